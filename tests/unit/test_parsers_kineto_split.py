"""The two-process parse of a big trace gives exactly the serial parse, and a cut that lands
inside a string falls back to the serial parse instead of a wrong answer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

import profilers.parsers._kineto_columns as columns
import profilers.parsers._trace_split as split
import profilers.parsers.kineto as kineto


def _replicated(h100_fixtures: Path, out: Path, copies: int, extra: dict | None = None) -> Path:
    doc = json.loads((h100_fixtures / "torch_trace.json").read_text())
    events = doc["traceEvents"]
    body = []
    for i in range(copies):
        for e in events:
            e2 = dict(e)
            if isinstance(e2.get("ts"), (int, float)) and e2.get("ph") != "M":
                e2["ts"] = round(e2["ts"] + i * 2e6, 3)
            body.append(e2)
    if extra is not None:
        body.insert(len(body) // 2, extra)
    doc["traceEvents"] = body
    out.write_text(json.dumps(doc, indent=2))  # one key per line, like torch writes
    return out


def _frames(t: kineto.KinetoTrace) -> list[pd.DataFrame]:
    return [f.astype({"name": object}) for f in (t.kernels, t.ops, t.runtime)]


def _parse_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    calls: list[bool] = []
    real = columns.parse_in_pieces

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(split, "SPLIT_MIN_BYTES", 0)
    # The split forks, so it refuses in a process with other threads alive; a test earlier in
    # the session may leave one (a Textual or telemetry thread), which made this test depend
    # on the order the suite ran in. The guard itself is tested below.
    monkeypatch.setattr(split.threading, "active_count", lambda: 1)
    monkeypatch.setattr(columns, "parse_in_pieces", spy)
    halves = kineto.load_kineto(path)
    monkeypatch.setattr(columns, "can_split", lambda *a: False)
    serial = kineto.load_kineto(path)
    return halves, serial, calls


def test_split_parse_equals_serial(h100_fixtures: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _replicated(h100_fixtures, tmp_path / "t.json", 12)
    halves, serial, calls = _parse_both(path, monkeypatch)
    assert calls == [True]  # the two-process path really ran
    for a, b in zip(_frames(halves), _frames(serial), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert halves.meta == serial.meta and halves.device_properties == serial.device_properties
    assert len(serial.kernels) == 12 * 26  # 18 kernels + 8 memsets per copy
    assert halves.meta["traceName"] and halves.meta["baseTimeNanoseconds"]


def test_cut_inside_a_string_falls_back_to_serial(h100_fixtures: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A name longer than the rest of the file, full of "}, {": the middle cut lands inside it.
    trap = {"ph": "X", "cat": "kernel", "name": "k" + "}, {" * 400_000, "pid": 0, "tid": 7,
            "ts": 1.0, "dur": 2.5, "args": {"correlation": 1, "stream": 7, "device": 0}}
    path = _replicated(h100_fixtures, tmp_path / "t.json", 2, extra=trap)
    halves, serial, calls = _parse_both(path, monkeypatch)
    assert calls == [False]
    for a, b in zip(_frames(halves), _frames(serial), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert (serial.kernels["dur_ns"] == 2500).sum() >= 1


def test_a_process_with_other_threads_parses_serially(tmp_path: Path) -> None:
    """Forking a threaded process can deadlock the child: the split is refused then."""
    import threading

    path = tmp_path / "t.json"
    path.write_text("[" + ",".join(["{}"] * 10) + "]")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not split.can_split(path, 1 << 40)
    finally:
        stop.set()
        other.join()


def test_many_pieces_equal_the_serial_parse(h100_fixtures: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of ~20 KB (about 40 of them): every cut, merge and interned id remap is
    exercised, and the frames are still exactly the serial parse's."""
    path = _replicated(h100_fixtures, tmp_path / "t.json", 12)
    monkeypatch.setattr(split, "PIECE_BYTES", 20_000)
    assert len(split.pieces(path, path.stat().st_size, 40) or []) > 20
    halves, serial, calls = _parse_both(path, monkeypatch)
    assert calls == [True]
    for a, b in zip(_frames(halves), _frames(serial), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert halves.meta == serial.meta


def _whose(path: Path, span: split.Span, bare: bool, marker: Path, size: int) -> tuple[int, int]:
    if span.end == size:  # the last piece: tell the parent, which waits for it
        marker.write_text("done")
    return os.getpid(), span.start


def test_the_faster_process_takes_the_pieces_the_other_has_not(h100_fixtures: Path,
                                                               tmp_path: Path) -> None:
    """Pieces go to whichever process asks first: while this process is busy (its
    ``meanwhile`` waits until the worker has taken the last piece) the worker parses them all,
    and they come back in file order."""
    import functools

    path = _replicated(h100_fixtures, tmp_path / "t.json", 12)
    size, marker = path.stat().st_size, tmp_path / "last-piece-taken"

    def busy() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    split_pieces = split.PIECE_BYTES
    try:
        split.PIECE_BYTES = 50_000
        got = split.parse_in_pieces(path, size, functools.partial(_whose, marker=marker,
                                                                  size=size), meanwhile=busy)
    finally:
        split.PIECE_BYTES = split_pieces
    assert got is not None and len(got) > 5
    assert {pid for pid, _ in got} == {got[0][0]} and got[0][0] != os.getpid()
    assert [start for _, start in got] == sorted(start for _, start in got)


def _dies_in_the_worker(path: Path, span: split.Span, bare: bool, parent: int,
                        marker: Path) -> int:
    if os.getpid() != parent:
        marker.write_text("dying")
        os._exit(3)  # the worker dies mid-parse, without a word
    return span.start


def test_a_worker_that_dies_means_the_serial_parse_not_a_hang(h100_fixtures: Path,
                                                              tmp_path: Path) -> None:
    import functools

    path = _replicated(h100_fixtures, tmp_path / "t.json", 12)
    marker = tmp_path / "worker-took-a-piece"

    def busy() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    split_pieces = split.PIECE_BYTES
    try:
        split.PIECE_BYTES = 50_000
        got = split.parse_in_pieces(path, path.stat().st_size, functools.partial(
            _dies_in_the_worker, parent=os.getpid(), marker=marker), meanwhile=busy)
    finally:
        split.PIECE_BYTES = split_pieces
    assert got is None
