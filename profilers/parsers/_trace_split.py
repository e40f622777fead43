"""Parse a big uncompressed trace in two parts at once: this process and one forked worker.

Why: decoding is CPU-bound Python + msgspec work; on a 2-core machine two halves in two
processes take about half the wall time. The file is cut at an event boundary (``}`` ``,``
``{`` between two array items) near its middle; the first half is read as
``bytes[0:cut]`` with the separator's first byte made ``]`` (a complete array with its header
before it), the second from the separator's last byte made ``[`` (a bare array followed by the
header's tail), each in its own private mapping of the file (``_trace_mapped``). A cut that
falls inside a string cannot decode in both halves, so any failure in either half falls back
to the serial parse — never to a wrong answer. The worker returns its column arrays (numpy, pickled once).
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
_SEP = re.compile(rb"\}\s*,\s*\{")
_PROBE = 4 << 20


def find_cut(path: Path, size: int, share: float = 0.5) -> tuple[int, int] | None:
    """(end of the first part: just after an event's ``}``, start of the second: the next
    event's ``{``) near ``share`` of the file, or None."""
    at = int(size * share)
    with open(path, "rb") as fh:
        fh.seek(at)
        probe = fh.read(_PROBE)
    m = _SEP.search(probe)
    if not m:
        return None
    return at + m.start() + 1, at + m.end() - 1


def can_split(path: Path, size: int) -> bool:
    if size < SPLIT_MIN_BYTES or os.cpu_count() in (None, 1):
        return False
    if threading.active_count() > 1 or "fork" not in mp.get_all_start_methods():
        return False  # forking a threaded process can deadlock: parse serially
    with open(path, "rb") as fh:
        return fh.read(2) != b"\x1f\x8b"  # a gzip stream cannot be cut


def _child(conn: Any, parse: Callable[..., Any], path: Path, start: int, size: int) -> None:
    try:
        # the separator byte before the first event opens the bare array
        conn.send(("ok", parse(path, Span(start - 1, size, open_at=start - 1), bare=True)))
    except BaseException as exc:  # noqa: BLE001 (any failure means: parse serially)
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def parse_in_two(path: Path, size: int, parse: Callable[..., Any], first_share: float = 0.5,
                 meanwhile: Callable[[], None] | None = None) -> tuple[Any, Any] | None:
    """(first part, second part) parsed by ``parse(path, stream, bare=...)``, or None to go
    serial. The worker takes the part after ``first_share``; this process runs ``meanwhile``
    (e.g. an import the caller needs next) and then parses the first part."""
    cut = find_cut(path, size, first_share)
    if cut is None:
        return None
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_child, args=(send, parse, path, cut[1], size), daemon=True)
    worker.start()
    send.close()
    try:
        if meanwhile is not None:
            meanwhile()
        try:
            # the separator byte after the last event closes the events array
            first = parse(path, Span(0, cut[0] + 1, close_at=cut[0]), bare=False)
        except Exception:
            first = None
        try:
            status, second = recv.recv()
        except (EOFError, OSError):
            status, second = "error", None
    finally:
        recv.close()
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()
            worker.join()
    if first is None or status != "ok":
        return None
    return first, second
