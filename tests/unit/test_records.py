"""The typed session record: the RunSpec itself, a status enum, the child's report flat in
``details``; homes written in the first layout (``extra.extra``) still open, on the real H200
records of tests/data/h200 and on first-layout analysis and eval records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sessions.records import RunRecord, RunStatus, SessionKind
from sessions.store import SessionStore
from tests.conftest import H200_DATA, H200_RUNS
from workloads.spec import AUTO, RunSpec, replays_kernels


def _first_layout(name: str) -> dict:
    return json.loads((H200_DATA / "runs" / H200_RUNS[name] / "record.json").read_text())


def test_a_real_first_layout_record_reads_typed_and_flat() -> None:
    stored = _first_layout("best")
    assert "extra" in stored and "extra" in stored["extra"]  # as captured on the H200
    record = RunRecord.from_dict(stored)
    assert isinstance(record.spec, RunSpec) and record.spec.preset == "llama-3.1-8b"
    assert record.spec.layers == ["L0", "L1", "L2", "L3", "L4", "L5", "L5-gemv"]
    assert record.status is RunStatus.OK and record.kind is SessionKind.RUN
    assert record.details["shape"]["hidden"] == 4096  # was extra.extra.shape
    assert record.details["runtime"]  # the dense runtime: graphs, compile mode
    assert [layer["name"] for layer in record.layers_applied][:2] == ["L0", "L1"]
    assert record.headline() == (pytest.approx(stored["metrics"]["tokens_per_s"]), "tok/s")
    again = record.to_dict()
    assert "extra" not in again and again["schema"] == 2
    assert RunRecord.from_dict(again) == record  # the new layout round-trips


def test_a_first_layout_home_lists_shows_and_rewrites_in_the_new_layout(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    run_id = H200_RUNS["L0"]
    shutil.copytree(H200_DATA / "runs" / run_id, store.run_dir(run_id))
    assert store.rebuild_index() == 1
    (row,) = store.list()
    assert row.status is RunStatus.OK and row.layers == "L0" and row.profiler == "torch"
    record = store.get(run_id)
    record.label = "relabelled"
    store.save(record)
    on_disk = json.loads((store.run_dir(run_id) / "record.json").read_text())
    assert "extra" not in on_disk and on_disk["details"]["shape"]["layers"] == 32


def test_first_layout_analysis_and_eval_sessions() -> None:
    analysis = RunRecord.from_dict({
        "id": "20260101-000000-aaaaaa", "created_at": 1.0, "status": "ok", "kind": "analysis",
        "spec": {"workload": "", "profiler": "kineto", "inputs": ["/x/trace.json.gz"]},
        "extra": {}, "artifacts": {"trace": "trace.json.gz"}})
    assert analysis.spec is None and analysis.inputs == ["/x/trace.json.gz"]
    assert analysis.profiler == "kineto" and analysis.workload == ""
    evaluated = RunRecord.from_dict({
        "id": "20260101-000000-bbbbbb", "created_at": 1.0, "status": "failed", "kind": "eval",
        "spec": {"run": {"workload": "dense", "preset": "tiny"}, "seq_len": 64, "stride": 16,
                 "layer_sets": [["L0"], ["L0", "L1"]], "workload": "dense", "preset": "tiny",
                 "profiler": "eval", "layers": ["L0;L0,L1"]},
        "metrics": {"perplexity": {"L0": 3.0}}, "extra": {"eval": {"ok": False, "sets": []}}})
    assert evaluated.spec == RunSpec(workload="dense", preset="tiny")
    assert evaluated.eval["seq_len"] == 64 and evaluated.eval["ok"] is False
    assert evaluated.layers_text == "L0;L0,L1" and evaluated.profiler == "eval"


def test_an_unknown_status_or_spec_field_does_not_lose_the_session() -> None:
    record = RunRecord.from_dict({"id": "x", "created_at": 1.0, "schema": 2, "status": "weird",
                                  "spec": {"workload": "dense", "from_the_future": 1}})
    assert record.status is RunStatus.FAILED and record.spec == RunSpec()


@pytest.mark.parametrize("profiler,repeat,warmup", [("timer", 5, 2), ("torch", 5, 2),
                                                    ("ncu", 1, 1), ("nsys", 1, 1)])
def test_profiler_dependent_defaults_live_in_the_spec(profiler: str, repeat: int,
                                                      warmup: int) -> None:
    spec = RunSpec(profiler=profiler)
    assert (spec.repeat, spec.warmup) == (repeat, warmup)
    assert replays_kernels(profiler) is (profiler in ("ncu", "nsys"))
    assert RunSpec(profiler=profiler, repeat=3, warmup=AUTO).repeat == 3  # given: kept
