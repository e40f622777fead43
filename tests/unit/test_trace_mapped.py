"""Plain trace files are decoded in place from a private mapping (no copies): the file is
never written, small chunks cut anywhere give the events of the whole-file decode, a cut that
lands inside a string is undone, and an event larger than a chunk is read whole."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from profilers.parsers import _trace_stream
from profilers.parsers._trace_mapped import MappedTraceStream, Span
from profilers.parsers._trace_stream import TraceStream
from profilers.parsers.kineto import load_kineto


def _trace(path: Path, events: list[dict], compact: bool = False) -> Path:
    sep = (",", ":") if compact else (", ", ": ")
    body = ",".join(json.dumps(e, separators=sep) for e in events) if compact else \
        ",\n  ".join(json.dumps(e) for e in events)
    path.write_text('{"schemaVersion": 1, "traceEvents": [' + body + '], "traceName": "t"}')
    return path


def _events(n: int, name: str = "k") -> list[dict]:
    return [{"ph": "X", "cat": "kernel", "name": f"{name}{i % 7}", "pid": 0, "tid": 7,
             "ts": 1.0 + i, "dur": 0.5 + (i % 5), "args": {"correlation": i, "stream": 7,
                                                          "grid": [i % 3 + 1, 1, 1]}}
            for i in range(n)]


def _read_all(stream) -> list:
    out = []
    for chunk in stream.events():
        out += [(e.cat, e.name, e.ts, e.dur, e.args.correlation if e.args else None)
                for e in chunk]
    return out


@pytest.mark.parametrize("compact", [False, True])
def test_small_chunks_give_the_whole_decode_and_leave_the_file_as_it_was(
        tmp_path, monkeypatch, compact):
    path = _trace(tmp_path / "t.json", _events(400), compact=compact)
    digest, mtime = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    whole = _read_all(TraceStream(path, open(path, "rb")))
    monkeypatch.setattr(_trace_stream, "CHUNK", 300)  # a few events per chunk
    stream = MappedTraceStream(path, Span(0, os.path.getsize(path)))
    assert _read_all(stream) == whole and len(whole) == 400
    assert stream.header() == {"schemaVersion": 1, "traceName": "t"}
    stream.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # brackets never reach the file
    assert path.stat().st_mtime_ns == mtime


def test_a_cut_inside_a_string_is_undone(tmp_path, monkeypatch):
    import msgspec

    events = _events(50)
    events[20]["name"] = "trap" + "}, {" * 3  # looks like event boundaries
    path = _trace(tmp_path / "t.json", events)
    undone = []
    real = MappedTraceStream._decode

    def spy(self, chunk):
        try:
            return real(self, chunk)
        except msgspec.DecodeError:
            undone.append(len(chunk))
            raise

    monkeypatch.setattr(MappedTraceStream, "_decode", spy)
    for chunk in range(300, 900, 7):  # window ends all over the trap
        monkeypatch.setattr(_trace_stream, "CHUNK", chunk)
        got = _read_all(MappedTraceStream(path, Span(0, os.path.getsize(path))))
        assert [g[1] for g in got] == [e["name"] for e in events], chunk
    assert undone  # some cut fell inside the string, and was undone


def test_an_event_larger_than_a_chunk_is_read_whole(tmp_path, monkeypatch):
    events = _events(30)
    events[10]["name"] = "x" * 5000
    path = _trace(tmp_path / "t.json", events)
    monkeypatch.setattr(_trace_stream, "CHUNK", 400)
    got = _read_all(MappedTraceStream(path, Span(0, os.path.getsize(path))))
    assert [g[1] for g in got] == [e["name"] for e in events]


def test_plain_and_gzip_files_give_the_same_tables(tmp_path, monkeypatch):
    plain = _trace(tmp_path / "t.json", _events(300))
    packed = tmp_path / "t.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setattr(_trace_stream, "CHUNK", 700)
    a, b = load_kineto(plain), load_kineto(packed)
    assert a.kernels.equals(b.kernels) and a.meta["traceName"] == b.meta["traceName"] == "t"


@pytest.mark.parametrize("text", ['{"traceEvents": [', '{"traceEvents": [{"ph": "X"}, {"ph"',
                                  "   ", '{"a": 1}'])
def test_truncated_or_foreign_files_are_one_line_errors(tmp_path, text):
    from workloads.errors import WorkbenchError

    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(WorkbenchError) as err:
        load_kineto(path)
    assert "\n" not in str(err.value)
