"""Diff comparability on the real H200 session records (tests/data/h200): what differs is named,
what a diff is for (layers, profiler) is allowed, and the gate fails closed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from analyzers.diff import (
    EXIT_NOT_COMPARABLE,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_UNDECIDED,
    diff_runs,
    gate,
)
from analyzers.diff_comparability import assess, kernel_score, shape_of
from sessions.records import RunRecord
from tests.conftest import H200_DATA, H200_RUNS


def _record(name: str) -> dict:
    """The stored record (first layout, as captured) in today's layout, as the API hands it
    to the analyzers."""
    stored = json.loads((H200_DATA / "runs" / H200_RUNS[name] / "record.json").read_text())
    return RunRecord.from_dict(stored).to_dict()


@pytest.fixture()
def eager() -> dict:
    return _record("L0")


@pytest.fixture()
def best() -> dict:
    return _record("best")


def test_layer_stacks_of_one_model_are_comparable(eager: dict, best: dict) -> None:
    comp = assess(eager, best)
    assert comp.comparable and not comp.differences and comp.score is None
    assert set(comp.same) >= {"workload", "preset", "shape", "dtype", "step", "device"}
    assert comp.allowed == ("layers L0 vs L0,L1,L2,L3,L4,L5,L5-gemv",)
    diff = diff_runs(eager, best)
    assert diff.verdict == "improved" and diff.figure == "latency median"
    # 28.72 ms eager vs 5.07 ms: the medians of the real samples
    assert diff.speedup == pytest.approx(28.719871520996094 / 5.071872234344482)
    assert diff.noise_floor_pct is not None and diff.ci_low is not None
    assert gate(diff, 5.0).exit_code == EXIT_OK
    assert gate(diff_runs(best, eager), 5.0).exit_code == EXIT_REGRESSED


def test_another_workload_is_named_and_nothing_else(eager: dict) -> None:
    moe = copy.deepcopy(eager)
    moe["spec"]["workload"] = "moe"
    moe["details"]["shape"] = {**shape_of(eager), "experts": 64, "top_k": 6}
    diff = diff_runs(moe, eager)
    assert diff.verdict == "not comparable"
    assert diff.verdict_reason.startswith("workload moe vs dense")
    assert "experts" not in diff.verdict_reason  # implied by the workload, not listed
    assert diff.speedup is None and diff.kernels is None
    decision = gate(diff, 5.0)
    assert decision.exit_code == EXIT_NOT_COMPARABLE
    assert "not comparable: workload moe vs dense" in decision.message


def test_preset_batch_length_dtype_and_step_are_each_named(eager: dict) -> None:
    other = copy.deepcopy(eager)
    other["spec"]["preset"] = "tiny"
    assert [d.text() for d in assess(eager, other).differences] == ["preset llama-3.1-8b vs tiny"]
    other = copy.deepcopy(eager)
    other["details"]["shape"].update(batch=8, prompt_len=512, dtype="float16")
    other["metrics"]["step"] = "prefill"
    texts = [d.text() for d in assess(eager, other).differences]
    assert texts == ["batch 1 vs 8", "prompt_len 128 vs 512", "dtype bfloat16 vs float16",
                     "step decode vs prefill"], texts


def test_force_compares_and_keeps_the_differences(eager: dict, best: dict) -> None:
    bigger = copy.deepcopy(best)
    bigger["details"]["shape"]["batch"] = 4
    diff = diff_runs(eager, bigger, force=True)
    assert diff.verdict == "improved" and diff.speedup is not None
    assert diff.comparability.forced and not diff.comparability.comparable
    assert "batch 1 vs 4" in diff.comparability.summary()
    assert "compared anyway" in diff.comparability.summary()


def test_ncu_block_against_whole_steps_withholds_the_verdict(best: dict) -> None:
    from profilers.parsers.kernel_table import make_kernel_table

    ncu = copy.deepcopy(best)
    ncu["id"] = "20261201-030458-2ae4ae"  # the real ncu run of the preset
    ncu["spec"]["profiler"] = "ncu"
    # as the real ncu run of the same preset recorded it
    ncu["details"]["profile_scope"] = {"blocks_profiled": 1, "blocks_total": 32,
                                              "scope": "sample", "what": "decoder block 31 of 32"}
    kt = make_kernel_table({"name": ["gemv_m1_kernel"] * 6, "dur_ns": [9_000] * 6},
                           source="torch")
    diff = diff_runs(best, ncu, kt_baseline=kt, kt_candidate=kt.head(2), steps_baseline=3,
                     steps_candidate=1)
    assert diff.baseline_ms == diff.candidate_ms == pytest.approx(0.018)  # per step
    assert diff.figure == "GPU time per step"  # an ncu latency is no timing
    assert diff.verdict == "inconclusive"
    assert "decoder block 31 of 32 vs" in diff.verdict_reason or \
        "whole steps vs decoder block 31 of 32" in diff.verdict_reason
    assert gate(diff, 5.0).exit_code == EXIT_UNDECIDED


def test_artifacts_of_different_scope_score_low(h100_fixtures: Path) -> None:
    from workbench.api.pipeline.analysis import analyze_paths

    trace = analyze_paths([h100_fixtures / "torch_trace.json"])[1].kernels
    ncu = analyze_paths([h100_fixtures / "ncu_raw.csv"])[1].kernels
    score, reasons = kernel_score(trace, ncu)
    assert score is not None and score < 0.5
    assert any("kernel launches differ" in r for r in reasons)
    assert kernel_score(trace, trace) == (1.0, [])


def test_suite_entry_regresses_and_fails_closed(eager: dict, best: dict) -> None:
    """The suite's gate on real runs: the eager step as the candidate of the best stack's
    baseline is a regression far beyond 150%; a changed shape is not judged."""
    from workbench.api.suite import compare_entry

    row = compare_entry("decode", eager, best, 150.0)
    assert row["regression"] and row["verdict"] == "regressed" and row["undecided"] is None
    other = copy.deepcopy(eager)
    other["details"]["shape"]["batch"] = 8
    row = compare_entry("decode", other, best, 150.0)
    assert not row["regression"] and row["undecided"] == \
        "not comparable: batch 1 vs 8"
