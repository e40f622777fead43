"""Run summaries and run diffs: verdicts, confidence intervals, CI gate, kernel deltas."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.diff import (
    EXIT_NOT_COMPARABLE,
    EXIT_UNDECIDED,
    bootstrap_speedup_ci,
    diff_runs,
    gate,
    regression_exceeds,
)
from analyzers.summary import run_summary
from profilers.parsers.kernel_table import make_kernel_table
from sessions.records import RunRecord


def _record(samples, run_id="r", **env) -> dict:
    s = np.asarray(samples, dtype=float)
    return {
        "id": run_id, "status": "ok", "spec": {"workload": "dense"},
        "env": {"device_name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04", **env},
        "metrics": {"latency_ms": {"median": float(np.median(s)), "mean": float(s.mean()),
                                   "stdev": float(s.std(ddof=1)), "n": len(s),
                                   "samples": s.tolist()},
                    "tokens_per_s": 1000.0 / float(np.median(s)), "peak_mem_bytes": None},
        "telemetry": {},
    }


def _samples(mean, n=20, cv=0.01, seed=0):
    return np.random.default_rng(seed).normal(mean, mean * cv, n)


def test_run_summary_from_record_and_dict():
    rec = _record([10.0, 11.0, 12.0, 13.0])
    summary = run_summary(rec)
    assert summary.latency_median_ms == 11.5 and summary.n == 4
    assert summary.latency_cv_pct == pytest.approx(np.std([10, 11, 12, 13], ddof=1) / 11.5 * 100)
    assert summary.latency_p10_ms == pytest.approx(np.quantile([10, 11, 12, 13], 0.1))
    assert summary.peak_mem_bytes is None  # missing stays None
    assert summary.device_name == "NVIDIA H100 80GB HBM3"
    record = RunRecord.from_dict({**rec, "created_at": 0.0})
    assert run_summary(record).latency_median_ms == 11.5
    empty = run_summary({"metrics": {}})
    assert empty.latency_median_ms is None and empty.latency_cv_pct is None


def test_run_against_itself_is_within_noise():
    rec = _record(_samples(10.0))
    diff = diff_runs(rec, rec)
    assert diff.speedup == 1.0
    assert diff.verdict == "within noise"
    assert diff.ci_low <= 1.0 <= diff.ci_high
    assert not regression_exceeds(diff, 1.0)
    assert diff.warnings == []


def test_clear_gain_is_improved():
    base = _record(_samples(15.0, seed=1), "a")
    cand = _record(_samples(10.0, seed=2), "b")
    diff = diff_runs(base, cand)
    assert diff.verdict == "improved"
    assert diff.speedup == pytest.approx(1.5, rel=0.03)
    assert diff.ci_low > 1.0 and diff.ci_low < diff.speedup < diff.ci_high
    assert diff.ci_method == "bootstrap"
    assert diff_runs(base, cand).ci_low == diff.ci_low  # seeded: deterministic
    assert not regression_exceeds(diff, 5.0)


def test_regression_gate_both_ways():
    base = _record(_samples(10.0, seed=3), "a")
    slower = _record(_samples(11.0, seed=4), "b")  # ~10% slower
    diff = diff_runs(base, slower)
    assert diff.verdict == "regressed"
    assert diff.ci_high < 1.0
    assert regression_exceeds(diff, 5.0)
    assert not regression_exceeds(diff, 20.0)
    # Reverse direction: the same pair read the other way is an improvement, never a regression.
    assert not regression_exceeds(diff_runs(slower, base), 5.0)


def test_noise_floor_from_cv():
    base = _record(_samples(10.0, n=200, cv=0.05, seed=5), "a")
    cand = _record(_samples(9.8, n=200, cv=0.05, seed=6), "b")  # 2% gain inside 5% CV
    diff = diff_runs(base, cand)
    assert diff.noise_floor_pct >= 4.0
    assert diff.verdict == "within noise"


def test_no_repeats_gives_no_ci_no_noise_floor_and_no_verdict():
    a = {"metrics": {"latency_ms": {"median": 10.0}}}
    b = {"metrics": {"latency_ms": {"median": 5.0}}}
    diff = diff_runs(a, b)
    assert diff.speedup == 2.0 and diff.ci_low is None and diff.noise_floor_pct is None
    # one figure per side: a 2x change cannot be told from noise, and the gate must not pass
    assert diff.verdict == "inconclusive" and "no repeats" in diff.verdict_reason
    decision = gate(diff, 5.0)
    assert decision.exit_code == EXIT_UNDECIDED and "cannot decide" in decision.message
    assert bootstrap_speedup_ci([1.0], [1.0]) is None


def test_comparability_warnings():
    a = _record(_samples(10.0), "a")
    b = _record(_samples(10.0), "b", driver="590.1")
    a["telemetry"] = {"sm_mhz_max": 1980.0, "power_limit_w": 700.0}
    b["telemetry"] = {"sm_mhz_max": 1500.0, "power_limit_w": 500.0, "throttle_seen": True,
                      "throttle_reasons": ["sw_power_cap"]}
    diff = diff_runs(a, b)
    text = " | ".join(diff.warnings)
    for word in ("driver differs", "SM clock", "power limit", "throttled"):
        assert word in text
    assert diff.verdict == "within noise"  # warnings, not a reason to refuse


def test_another_device_is_not_comparable():
    a = _record(_samples(10.0), "a")
    b = _record(_samples(10.0), "b", device_name="NVIDIA H200")
    diff = diff_runs(a, b)
    assert diff.verdict == "not comparable" and diff.speedup is None
    assert "device NVIDIA H100 80GB HBM3 vs NVIDIA H200" in diff.verdict_reason
    assert gate(diff, 5.0).exit_code == EXIT_NOT_COMPARABLE


def test_kernel_and_category_deltas_per_step():
    kt_a = make_kernel_table({"name": ["nvjet_a", "nvjet_a", "triton_poi_fused_0"],
                              "dur_ns": [100, 100, 50]}, source="torch")
    kt_b = make_kernel_table({"name": ["nvjet_a", "triton_poi_fused_1"] * 2,
                              "dur_ns": [80, 10, 80, 10]}, source="torch")
    rec = _record(_samples(10.0))
    diff = diff_runs(rec, rec, kt_a, kt_b, steps_baseline=2, steps_candidate=2)
    assert diff.per_step
    kernels = diff.kernels.set_index("name")
    assert kernels.loc["nvjet_a", "baseline_ns"] == 100 and kernels.loc["nvjet_a", "candidate_ns"] == 80
    assert kernels.loc["nvjet_a", "delta_pct"] == pytest.approx(-20.0)
    assert kernels.loc["triton_poi_fused_1", "status"] == "new"
    assert np.isnan(kernels.loc["triton_poi_fused_1", "delta_pct"])  # no baseline: n/a
    assert diff.appeared == ["triton_poi_fused_1"]
    assert diff.disappeared == ["triton_poi_fused_0"]
    cats = diff.categories.set_index("category")
    assert cats.loc["gemm", "delta_ns"] == -20


def test_gate_cannot_pass_inside_noise_wider_than_its_threshold():
    """Within noise is no pass when the noise is wider than the gate: a 10% gate over runs
    with a 50% CV cannot show that B is not 10% slower."""
    base = _record(_samples(10.0, n=8, cv=0.01, seed=7), "a")
    noisy = _record([5.0, 15.0, 6.0, 14.0, 10.0, 9.5, 10.5, 10.0], "b")  # CV ~34%
    diff = diff_runs(base, noisy)
    assert diff.verdict == "within noise"
    decision = gate(diff, 10.0)
    assert decision.exit_code == EXIT_UNDECIDED and "beyond the 10% threshold" in decision.message
    steady = _record(_samples(10.1, n=20, cv=0.01, seed=9), "c")  # ~1% slower, tight CI
    assert gate(diff_runs(base, steady), 10.0).exit_code == 0
    assert gate(diff_runs(base, base), 0.0).exit_code == 0  # the same run on both sides
