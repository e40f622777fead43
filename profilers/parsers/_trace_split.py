"""Parse a big uncompressed trace in pieces shared by two processes: this one and a forked worker.

Why: decoding is CPU-bound Python + msgspec work; on a 2-core machine two processes take about
half the wall time — if they finish together. A fixed split (one half each) left one process
waiting whenever the other had more to do (the parent imports pandas first, or another job
shares its core): on a 1 GB trace the worker ran 4.0 s CPU while the parent sat idle after 2.1.
So the file is cut into many pieces at event boundaries and each process takes the next piece
from a shared counter until none is left: whoever is faster does more.

A piece is ``bytes[start:end]`` read in its own private mapping of the file (``_trace_mapped``):
the first keeps the header before its events and has the separator after its last event made
``]``; a later one starts at the separator byte before its first event, made ``[`` (a bare
array), and the last keeps the header's tail after the events. A cut is a ``}`` ``,`` ``{``
between two events; one that falls inside a string or a nested value leaves the piece before it
unterminated, which cannot decode — so any failure in any piece falls back to the serial parse,
never to a wrong answer. The worker sends each piece's column arrays (numpy, pickled) as soon
as it is parsed; a thread here receives them meanwhile.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profilers.parsers._trace_mapped import Span

SPLIT_MIN_BYTES = 48 << 20  # below this, a fork costs more than it saves
PIECE_BYTES = 16 << 20  # pieces of about this size (a 1 GB trace: 60): the imbalance is < one
_MIN_PIECES, _MAX_PIECES = 8, 64
_SEP = re.compile(rb"\}\s*,\s*\{")
_PROBE = 64 << 10
_MAX_PROBE = 4 << 20


def find_cut(path: Path, size: int, share: float = 0.5) -> tuple[int, int] | None:
    """(end of the first part: just after an event's ``}``, start of the second: the next
    event's ``{``) near ``share`` of the file, or None."""
    at = int(size * share)
    probe = _PROBE
    with open(path, "rb") as fh:
        while True:
            fh.seek(at)
            data = fh.read(probe)
            m = _SEP.search(data)
            if m:
                return at + m.start() + 1, at + m.end() - 1
            if probe >= _MAX_PROBE or at + len(data) >= size:
                return None
            probe *= 4


def pieces(path: Path, size: int, count: int) -> list[tuple[Span, bool]] | None:
    """``count`` (or fewer, where events are longer than a piece) consecutive pieces covering
    the events array, each a (span, bare) to parse; None when no cut is found."""
    cuts: list[tuple[int, int]] = []
    for i in range(1, count):
        cut = find_cut(path, size, i / count)
        if cut is not None and (not cuts or cut[0] > cuts[-1][1]):
            cuts.append(cut)
    if not cuts:
        return None
    # the first piece: the header, its events, the separator after the last made "]"
    out = [(Span(0, cuts[0][0] + 1, close_at=cuts[0][0]), False)]
    for (_, start), (end, _) in zip(cuts, cuts[1:], strict=False):
        # a middle piece: the separator byte before its first event opens a bare array
        out.append((Span(start - 1, end + 1, open_at=start - 1, close_at=end), True))
    out.append((Span(cuts[-1][1] - 1, size, open_at=cuts[-1][1] - 1), True))
    return out


def can_split(path: Path, size: int) -> bool:
    if size < SPLIT_MIN_BYTES or os.cpu_count() in (None, 1):
        return False
    if threading.active_count() > 1 or "fork" not in mp.get_all_start_methods():
        return False  # forking a threaded process can deadlock: parse serially
    with open(path, "rb") as fh:
        return fh.read(2) != b"\x1f\x8b"  # a gzip stream cannot be cut


def _take(work: list[tuple[Span, bool]], parse: Callable[..., Any], path: Path, next_piece: Any,
          failed: Any, done: Callable[[int, Any], None]) -> None:
    """Parse pieces taken from the shared counter until none is left (or either process
    failed), handing each to ``done(index, result)``."""
    while not failed.value:
        with next_piece.get_lock():
            i = next_piece.value
            next_piece.value += 1
        if i >= len(work):
            return
        span, bare = work[i]
        try:
            result = parse(path, span, bare=bare)
        except BaseException:
            failed.value = 1
            raise
        done(i, result)


def _child(conn: Any, work: list[tuple[Span, bool]], parse: Callable[..., Any], path: Path,
           next_piece: Any, failed: Any) -> None:
    # Each piece is sent as soon as it is parsed: the parent's reader thread takes it while
    # both still parse, so little is left to pickle and pass when the last piece is done.
    try:
        _take(work, parse, path, next_piece, failed, lambda i, result: conn.send(("piece", i, result)))
        conn.send(("done", 0, None))
    except BaseException as exc:  # noqa: BLE001 (any failure means: parse serially)
        failed.value = 1
        conn.send(("error", 0, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _receive(conn: Any, into: dict[int, Any], status: list[str]) -> None:
    """The worker's pieces as they come (a thread of this process); ``status[0]`` ends as
    "done", or "error" when the worker failed or died."""
    try:
        while True:
            kind, i, result = conn.recv()
            if kind != "piece":
                status[0] = kind
                return
            into[i] = result
    except (EOFError, OSError):
        status[0] = "error"


def parse_in_pieces(path: Path, size: int, parse: Callable[..., Any],
                    meanwhile: Callable[[], None] | None = None) -> list[Any] | None:
    """Every piece's ``parse(path, span, bare=...)``, in file order, or None to go serial.
    This process runs ``meanwhile`` (e.g. an import the caller needs next) before it joins in."""
    # at least _MIN_PIECES: whoever finishes first waits at most for one small piece
    count = max(_MIN_PIECES, min(_MAX_PIECES, size // PIECE_BYTES))
    work = pieces(path, size, count)
    if work is None:
        return None
    ctx = mp.get_context("fork")
    next_piece, failed = ctx.Value("q", 0), ctx.Value("b", 0)
    recv, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_child, args=(send, work, parse, path, next_piece, failed),
                         daemon=True)
    worker.start()  # forked before the reader thread starts: the child gets no thread
    send.close()
    results: dict[int, Any] = {}
    theirs: dict[int, Any] = {}
    status = ["error"]
    reader = threading.Thread(target=_receive, args=(recv, theirs, status), daemon=True)
    reader.start()
    ok = True
    try:
        if meanwhile is not None:
            meanwhile()
        try:
            _take(work, parse, path, next_piece, failed, results.__setitem__)
        except Exception:
            ok = False
        reader.join()
    finally:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()
            worker.join()
        reader.join(timeout=10)
        recv.close()
    if not ok or status[0] != "done":
        return None
    results.update(theirs)
    if sorted(results) != list(range(len(work))):
        return None
    return [results[i] for i in range(len(work))]
