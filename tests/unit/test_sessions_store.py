from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sessions.records import RunStatus
from sessions.store import SessionStore, default_home
from workloads.atomic import write_json_atomic
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec


def test_record_roundtrip_and_index(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    rec = store.new_run(RunSpec(workload="dense", preset="tiny", layers=["L0", "L1"],
                                profiler="timer"))
    rec.status = RunStatus.OK
    rec.metrics = {"tokens_per_s": 123.5, "latency_ms": {"median": 2.0}}
    store.save(rec)
    again = store.get(rec.id)
    assert again.metrics["tokens_per_s"] == 123.5 and again.status is RunStatus.OK
    assert again.spec == rec.spec and isinstance(again.spec, RunSpec)
    rows = store.list()
    assert rows[0].id == rec.id and rows[0].layers == "L0,L1"
    assert rows[0].headline == 123.5 and rows[0].headline_unit == "tok/s"
    # unique suffix of the id works as a short id
    assert store.get(rec.id.split("-")[-1]).id == rec.id
    # WAL mode is on
    import sqlite3

    mode = sqlite3.connect(store.db_path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_missing_session_is_a_workbench_error(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    with pytest.raises(WorkbenchError, match="no session"):
        store.get("nope")


def test_delete_and_rebuild_index(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    a = store.new_run(RunSpec())
    b = store.new_run(RunSpec())
    store.delete(a.id)
    assert not store.run_dir(a.id).exists()
    os.remove(store.db_path)
    store2 = SessionStore(tmp_path)
    assert store2.rebuild_index() == 1
    assert [r.id for r in store2.list()] == [b.id]


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json_atomic(target, {"a": Boom()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_home_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIPERF_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"


def test_unwritable_home_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorkbenchError, match="cannot create the session home"):
        SessionStore(blocker / "sub")
