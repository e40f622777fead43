"""The two-process parse of a big trace gives exactly the serial parse, and a cut that lands
inside a string falls back to the serial parse instead of a wrong answer."""

from __future__ import annotations

import json
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
    real = columns.parse_in_two

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(split, "SPLIT_MIN_BYTES", 0)
    # The split forks, so it refuses in a process with other threads alive; a test earlier in
    # the session may leave one (a Textual or telemetry thread), which made this test depend
    # on the order the suite ran in. The guard itself is tested below.
    monkeypatch.setattr(split.threading, "active_count", lambda: 1)
    monkeypatch.setattr(columns, "parse_in_two", spy)
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
