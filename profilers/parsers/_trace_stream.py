"""Streaming decode of a Chrome/Kineto trace's ``traceEvents`` array, chunk by chunk.

Why: a 1 GB trace holds millions of events; decoding it whole (json/orjson) builds millions of
dicts at once. Here the bytes are read in blocks, cut at event boundaries (``}`` ``,`` ``{``
between two top-level array items), and each chunk is decoded with msgspec into small typed
Structs that declare only the fields we use (unknown fields are skipped without allocation).
The Structs of one chunk are turned into column lists and dropped before the next chunk.

A cut is only accepted if the chunk decodes: a cut inside an event leaves unbalanced brackets
or an open string, so it can never decode, and we then try an earlier boundary.

Hostile input stays bounded: the decompressed bytes read are capped (``_io.input_limits``), a
cut or the array's end is looked for a bounded number of times per chunk, JSON nested deeper
than Python's recursion limit is a one-line error (never a RecursionError), and events whose
fields have the wrong type (a string duration, a list for a name) are counted in
``skipped_events`` and left out — never converted ("5" is not 5 us).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from profilers.parsers._io import input_limits, too_many_bytes
from workloads.errors import WorkbenchError

READ_BLOCK = 4 << 20
CHUNK = 2 << 20  # events decoded at a time: 2 MB keeps them in cache (8 MB: 4x the page faults)
_MAX_CUT_TRIES = 8
_MAX_END_TRIES = 16  # candidate ends of the events array tried, from the last one back

_TRACE_EVENTS = re.compile(rb'"traceEvents"\s*:\s*\[')
_SEP = re.compile(rb"\}\s*,\s*\{")
_END = re.compile(rb"\}\s*\]")
_CLOSE = re.compile(rb"\s*\]")


# Absent integers decode to MISSING and absent floats to NaN (not None), so the collector
# turns a chunk's field into a numpy column in C (np.fromiter) without a None check per event;
# an explicit JSON null still gives None, which the collector's slower path reads as missing.
MISSING = -(2**63)  # the int64 columns' sentinel for an absent integer
_NAN = float("nan")


class Args(msgspec.Struct, gc=False):  # gc=False: no cycles, and GC passes cost 2x
    external_id: int | None = msgspec.field(default=MISSING, name="External id")
    correlation: int | None = MISSING
    device: int | None = MISSING
    stream: int | str | None = MISSING  # ROCm's runtime calls give "0x0": kept, read as missing
    grid: tuple[int, ...] | None = None  # tuples: hashable as decoded, interned at once
    block: tuple[int, ...] | None = None
    registers: int | None = msgspec.field(default=MISSING, name="registers per thread")
    shared_mem: int | None = msgspec.field(default=MISSING, name="shared memory")
    flops: float | None = _NAN
    # Raw: the bytes as written, kept only as a label (no list objects are built for it).
    input_dims: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="Input Dims")
    input_types: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="Input type")
    concrete_inputs: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="Concrete Inputs")


class Event(msgspec.Struct, gc=False):
    cat: str | None = None
    name: str | None = None
    pid: int | str | None = None  # a device's track in Kineto: the device id for GPU events
    ts: float | None = _NAN
    dur: float | None = _NAN
    args: Args | None = None
    tid: int | str | None = None  # the CPU thread: annotation ranges nest per thread


_DECODER = msgspec.json.Decoder(list[Event])
_GENERIC = msgspec.json.Decoder()


_ARG_KEYS = {f.encode_name for f in msgspec.structs.fields(Args)}


def _readable_args(args: dict[str, Any]) -> dict[str, Any]:
    """The args entries we read that convert on their own: one bad value (a grid given as
    text) must not lose the correlation id that links a kernel to its launch."""
    keep = {}
    for key, value in args.items():
        if key not in _ARG_KEYS:
            continue
        try:
            msgspec.convert({key: value}, Args)
        except (msgspec.ValidationError, TypeError, ValueError, OverflowError):
            continue
        keep[key] = value
    return keep


def _lenient_events(chunk: bytes | bytearray | memoryview) -> tuple[list[Event], int, int]:
    """Slow path for a chunk with wrong types: (the events that convert strictly, how many
    were skipped, how many kept with their unreadable args dropped)."""
    items = _GENERIC.decode(chunk)
    out: list[Event] = []
    skipped = bad_args = 0
    for item in items:
        if not isinstance(item, dict):
            skipped += 1
            continue
        args = item.get("args")
        for raw_key in ("Input Dims", "Input type", "Concrete Inputs"):
            if isinstance(args, dict) and raw_key in args:
                try:
                    raw = msgspec.Raw(msgspec.json.encode(args[raw_key]))
                except (TypeError, ValueError, OverflowError):
                    raw = msgspec.Raw(b"")
                args = {**args, raw_key: raw}
                item = {**item, "args": args}
        try:
            out.append(msgspec.convert(item, Event))
        except (msgspec.ValidationError, TypeError, ValueError, OverflowError):
            # Keep the event if only its args are bad (names and times are what count), with
            # the args values that are readable.
            try:
                bad = item.get("args")
                item = {k: v for k, v in item.items() if k != "args"}
                if isinstance(bad, dict):
                    item["args"] = _readable_args(bad)
                out.append(msgspec.convert(item, Event))
                bad_args += 1
            except (msgspec.ValidationError, TypeError, ValueError, OverflowError):
                skipped += 1
    return out, skipped, bad_args


class TraceStream:
    """Reads one trace file; ``events()`` yields lists of Events; ``header`` after the end."""

    def __init__(self, path: Path, stream: Any, bare: bool = False) -> None:
        self.path = path
        self._bare = bare  # the stream is a bare events array (second half of a split file)
        self._f = stream
        self._buf = bytearray()
        self._eof = False
        self._consumed = 0  # bytes dropped from the front of _buf
        self.prefix = b""
        self.suffix = b""
        self.skipped_events = 0  # events left out: not an object, or fields of the wrong type
        self.bad_args_events = 0  # events kept without their unreadable args
        self.bytes_read = 0
        self._max_bytes = input_limits().max_bytes

    def _fail(self, what: str, at: int | None = None) -> WorkbenchError:
        where = f" near byte {self._consumed + at}" if at is not None else ""
        return WorkbenchError(
            f"{self.path}: not a readable Kineto trace ({what}{where})",
            "the file may be truncated or corrupt; re-record the trace",
        )

    def _read(self) -> bool:
        if self._eof:
            return False
        try:
            block = self._f.read(READ_BLOCK)
        except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
            raise self._fail(f"cannot decompress: {exc}") from None
        if not block:
            self._eof = True
            return False
        self.bytes_read += len(block)
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise too_many_bytes(self.path, "trace", self._max_bytes)
        self._buf += block
        return True

    def _decode(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        try:
            try:
                return _DECODER.decode(chunk)
            except msgspec.ValidationError:
                events, skipped, bad_args = _lenient_events(chunk)
                self.skipped_events += skipped
                self.bad_args_events += bad_args
                return events
        except UnicodeDecodeError as exc:  # msgspec raises it bare for bad UTF-8 in strings
            raise self._fail(f"not UTF-8 text: {exc.reason}") from None
        except RecursionError:  # msgspec recurses per nesting level, up to Python's limit
            raise self._fail("JSON nested too deep") from None

    def _find_start(self) -> int:
        """Position just after the '[' that opens the events array."""
        while self._bare and not self._buf.strip() and self._read():
            pass
        while not self._bare:
            m = _TRACE_EVENTS.search(self._buf)
            if m:
                self.prefix = bytes(self._buf[: m.end() - 1])
                return m.end()
            if not self._read():
                break
        stripped = self._buf.lstrip()
        if stripped.startswith(b"["):  # a bare JSON array of events is a valid Chrome trace
            return len(self._buf) - len(stripped) + 1
        if not self._buf.strip():
            raise self._fail("no content")
        raise self._fail('no "traceEvents" array')

    def events(self) -> Iterator[list[Event]]:
        pos = self._find_start()
        buf = self._buf
        while True:
            while len(buf) - pos < CHUNK and self._read():
                pass
            # empty array or array fully consumed
            m_ws = _CLOSE.match(buf, pos)
            if m_ws:
                end = m_ws.end()
                del m_ws
                self._finish(end)
                return
            if self._eof and len(buf) - pos < CHUNK:
                yield self._decode_tail(pos)
                return
            got = self._cut_and_decode(pos, pos + CHUNK)
            if got is None:
                if not self._read():
                    yield self._decode_tail(pos)
                    return
                continue
            events, nxt = got
            del buf[:nxt]
            self._consumed += nxt
            pos = 0
            yield events

    def _cut_and_decode(self, lo: int, hi: int) -> tuple[list[Event], int] | None:
        buf = self._buf
        tries = 0
        end = min(hi, len(buf))
        while tries < _MAX_CUT_TRIES:
            p = buf.rfind(b"}", lo, end)
            if p < 0:
                return None
            m = _SEP.match(buf, p)
            if not m:
                end = p
                continue
            tries += 1
            # A copy, not a view of buf: the Raw "Input Dims" values point into the decoded
            # buffer, and buf must stay resizable while they live.
            chunk = bytearray(b"[")
            chunk += memoryview(buf)[lo : p + 1]  # the temporary view is released at once
            chunk += b"]"
            nxt = m.end() - 1
            del m
            try:
                return self._decode(chunk), nxt
            except msgspec.DecodeError:
                end = p
        raise self._fail("malformed JSON", lo)

    def _decode_tail(self, pos: int) -> list[Event]:
        """The last events: find the '}' ']' that closes the array, then the header's rest.

        Candidates are tried from the last one back, a bounded number of them: anything after
        the real end is the header's tail, where few '}' ']' occur, while the events before it
        may hold thousands (one decode each, forward, made a hostile tail quadratic)."""
        buf = self._buf
        spans = [m.span() for m in _END.finditer(buf, pos)]  # no match may outlive a resize
        for start, end in reversed(spans[-_MAX_END_TRIES:]):
            chunk = b"[" + bytes(buf[pos : start + 1]) + b"]"
            try:
                events = self._decode(chunk)
            except msgspec.DecodeError:
                continue
            self._finish(end)
            return events
        raise self._fail("truncated or malformed events array", pos)

    def _finish(self, after_array: int) -> None:
        while self._read():
            pass
        self.suffix = bytes(self._buf[after_array:])
        self._buf.clear()

    def close(self) -> None:
        try:
            self._f.close()
        except (OSError, EOFError):
            pass

    def header(self, suffix: bytes | None = None) -> dict[str, Any]:
        """The trace's top-level fields other than traceEvents (small: decoded whole).
        ``suffix``: the header's tail when another stream read the end of the file."""
        if not self.prefix:
            return {}
        doc = self.prefix + b"[]" + (self.suffix if suffix is None else suffix)
        try:
            head = _GENERIC.decode(doc)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise self._fail(f"bad top-level JSON: {exc}") from None
        except RecursionError:
            raise self._fail("top-level JSON nested too deep") from None
        if not isinstance(head, dict):
            raise self._fail("top level is not a JSON object")
        head.pop("traceEvents", None)
        return head
