"""The events of an uncompressed trace read straight from the page cache: no copies.

Why: ``TraceStream`` reads a file in blocks into a buffer and copies each chunk out with its
brackets around it — two copies of every byte, a quarter of a 1 GB trace's parse. Here the
file is mapped copy-on-write (``mmap.ACCESS_COPY``: writes stay in this process, the file is
never touched) and each chunk is decoded in place: the separator byte before its first event
becomes ``[`` and the one after its last event ``]`` (a ``,`` or a blank, never part of an
event), so ``file[before : after + 1]`` is a JSON array. Pages already decoded are handed
back (``MADV_DONTNEED``), so memory stays at about one chunk, not the file.

The chunking rules are ``TraceStream``'s: a cut must decode (a cut inside a string never
does, and is undone), a bounded number of cuts is tried per chunk, and the end of the array is
looked for among the last few ``}`` ``]``. An event larger than a chunk widens the window
(doubling) instead of decoding the rest of the file at once.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from profilers.parsers import _trace_stream
from profilers.parsers._trace_stream import (
    _CLOSE,
    _END,
    _MAX_CUT_TRIES,
    _MAX_END_TRIES,
    _SEP,
    _TRACE_EVENTS,
    Event,
    TraceStream,
)

_BLANK = re.compile(rb"\s*")


@dataclass(frozen=True)
class Span:
    """Part of a file to read as a trace: bytes [start, end). ``open_at``: a separator byte to
    make the ``[`` of a bare events array (the second part of a split file); ``close_at``: one
    to make the ``]`` that closes the events array (the first part)."""

    start: int
    end: int
    open_at: int | None = None
    close_at: int | None = None


class MappedTraceStream(TraceStream):
    """``TraceStream`` over a span of a plain file, decoded in place in a private mapping."""

    def __init__(self, path: Path, span: Span, bare: bool = False) -> None:
        super().__init__(path, None, bare=bare)
        with open(path, "rb") as fh:
            self._mm: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        self._view: Any = memoryview(self._mm)
        self._lo, self._hi = span.start, min(span.end, len(self._mm))
        self._released = 0  # pages below this offset are handed back
        if span.open_at is not None:
            self._mm[span.open_at] = ord("[")
        if span.close_at is not None:
            self._mm[span.close_at] = ord("]")
        self.bytes_read = self._hi - self._lo

    def _release_below(self, offset: int) -> None:
        """Hand back the decoded pages below ``offset`` (they are read again from the file if
        touched, which they are not)."""
        page = (offset // mmap.PAGESIZE) * mmap.PAGESIZE
        if page > self._released and hasattr(self._mm, "madvise"):
            self._mm.madvise(mmap.MADV_DONTNEED, self._released, page - self._released)
            self._released = page

    def _find_start(self) -> int:
        mm, lo, hi = self._mm, self._lo, self._hi
        if not self._bare:
            m = _TRACE_EVENTS.search(mm, lo, hi)
            if m:
                self.prefix = bytes(mm[lo : m.end() - 1])
                return m.end()
        first = _BLANK.match(mm, lo, hi).end()  # type: ignore[union-attr]
        if first < hi and mm[first] == ord("["):  # a bare JSON array of events
            return first + 1
        if first >= hi:
            raise self._fail("no content")
        raise self._fail('no "traceEvents" array')

    def events(self) -> Any:
        pos = self._find_start()
        hi = self._hi
        while True:
            self._release_below(pos - 1)
            m_close = _CLOSE.match(self._mm, pos, hi)
            if m_close:  # the array is empty, or fully read
                self._finish(m_close.end())
                return
            if hi - pos < _trace_stream.CHUNK:
                yield self._decode_tail(pos)
                return
            window = _trace_stream.CHUNK
            while True:
                got = self._cut_and_decode(pos, min(pos + window, hi))
                if got is not None or pos + window >= hi:
                    break
                window *= 2  # one event longer than the window: look further
            if got is None:
                yield self._decode_tail(pos)
                return
            events, pos = got
            yield events

    def _cut_and_decode(self, lo: int, hi: int) -> tuple[list[Event], int] | None:
        mm, view = self._mm, self._view
        tries = 0
        end = hi
        while tries < _MAX_CUT_TRIES:
            p = mm.rfind(b"}", lo, end)
            if p < 0:
                return None
            m = _SEP.match(mm, p, self._hi)
            if not m:
                end = p
                continue
            tries += 1
            nxt = m.end() - 1  # the next event's "{"
            before, after = mm[lo - 1], mm[p + 1]
            mm[lo - 1], mm[p + 1] = ord("["), ord("]")
            try:
                return self._decode(view[lo - 1 : p + 2]), nxt
            except msgspec.DecodeError:
                mm[lo - 1], mm[p + 1] = before, after  # a cut inside a string: undo it
                end = p
        raise self._fail("malformed JSON", lo)

    def _decode_tail(self, pos: int) -> list[Event]:
        mm, view = self._mm, self._view
        spans = [m.span() for m in _END.finditer(mm, pos, self._hi)]
        before = mm[pos - 1]
        mm[pos - 1] = ord("[")
        for _start, end in reversed(spans[-_MAX_END_TRIES:]):
            try:
                events = self._decode(view[pos - 1 : end])
            except msgspec.DecodeError:
                continue
            self._finish(end)
            return events
        mm[pos - 1] = before
        raise self._fail("truncated or malformed events array", pos)

    def _finish(self, after_array: int) -> None:
        self.suffix = bytes(self._mm[after_array : self._hi])

    def close(self) -> None:
        """Drop the mapping: it is unmapped once the last decoded value that points into it
        is gone (closing it under them would raise)."""
        try:
            self._view.release()
        except BufferError:
            pass
        self._mm = self._view = None
