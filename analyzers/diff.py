"""Compare two runs: can they be compared, is the candidate faster, by how much, and is that
more than noise?

First comparability (analyzers.diff_comparability): runs of a different workload, preset,
shape, dtype, step or device are "not comparable", each difference named; sides without a
run spec are scored on their kernels as nsys-ai does. A user may force the comparison.

Then the figure both sides have: the median of the per-repeat latency samples where both runs
were timed (not under a replaying profiler), else the GPU kernel time of their artifacts, per
profiled step where both step counts are known. Speedup = baseline / candidate (> 1: the
candidate is faster). Its 95% confidence interval comes from a seeded percentile bootstrap over
the latency samples, so it is deterministic. Verdict: "within noise" when the interval
straddles 1.0 or the change is smaller than the noise floor (the larger CV of the two runs, at
least ``min_noise_pct``), else "improved" / "regressed". Without repeats there is no noise
estimate: no CI, no noise floor, and the verdict is "inconclusive" (or "identical" for the same
capture on both sides). The CI gate (``gate``) fails closed: a diff it cannot decide does not
pass.

Kernel-level deltas come from two KernelTables, per step when step counts are given. Warnings
flag what may still differ (driver, clocks, power limit, throttling).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analyzers.breakdown import category_breakdown, kernel_breakdown
from analyzers.diff_comparability import Comparability, assess
from analyzers.summary import RunSummary, as_record_dict, number, run_summary
from profilers.parsers.schema import Col
from workloads.spec import replays_kernels

VERDICTS = ("improved", "regressed", "within noise", "identical", "inconclusive",
            "not comparable")
# Profilers that serialize and replay kernels: the latency measured under them is no timing.
EXIT_OK, EXIT_REGRESSED, EXIT_NOT_COMPARABLE, EXIT_UNDECIDED = 0, 1, 2, 3


@dataclass(frozen=True)
class RunDiff:
    baseline: RunSummary
    candidate: RunSummary
    speedup: float | None  # baseline figure / candidate figure; None when not computed
    change_pct: float | None  # (speedup - 1) * 100; > 0 is faster
    ci_low: float | None  # 95% CI of the speedup
    ci_high: float | None
    ci_method: str  # bootstrap | none
    noise_floor_pct: float | None  # None: no repeats on a side, so no noise estimate
    verdict: str  # one of VERDICTS
    figure: str = "latency median"  # what the speedup compares (see compared_figure)
    baseline_ms: float | None = None  # the compared figure of each side
    candidate_ms: float | None = None
    verdict_reason: str | None = None  # why not comparable / inconclusive
    comparability: Comparability = field(default_factory=Comparability)
    categories: pd.DataFrame | None = None  # category, baseline_ns, candidate_ns, delta_ns, delta_pct
    kernels: pd.DataFrame | None = None  # name, category, baseline_*, candidate_*, delta_*, status
    appeared: list[str] = field(default_factory=list)
    disappeared: list[str] = field(default_factory=list)
    per_step: bool = False
    warnings: list[str] = field(default_factory=list)
    same_capture: bool = False  # the same run or artifact on both sides


def bootstrap_speedup_ci(baseline: list[float], candidate: list[float], n_boot: int = 4000,
                         seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of median(baseline) / median(candidate); None with < 2 samples."""
    a = np.asarray(baseline, dtype="float64")
    b = np.asarray(candidate, dtype="float64")
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    med_a = np.median(a[rng.integers(0, len(a), size=(n_boot, len(a)))], axis=1)
    med_b = np.median(b[rng.integers(0, len(b), size=(n_boot, len(b)))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = med_a / med_b
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _verdict(speedup: float | None, ci: tuple[float, float] | None,
             floor_pct: float) -> str | None:
    if speedup is None:
        return None
    # Symmetric in faster/slower: a 4x slowdown is a 300% change, not the -75% of the speedup.
    change = max(abs(speedup - 1.0), abs(1.0 / speedup - 1.0)) * 100.0 if speedup > 0 else 0.0
    if change < floor_pct or (ci is not None and ci[0] <= 1.0 <= ci[1]):
        return "within noise"
    return "improved" if speedup > 1.0 else "regressed"


def _per_step(frame: pd.DataFrame, steps: float | None) -> pd.DataFrame:
    out = frame.copy()
    if steps:
        out["total_ns"] = out["total_ns"] / float(steps)
        out["count"] = out["count"] / float(steps)
    return out


def _delta_pct(base: pd.Series, cand: pd.Series) -> pd.Series:
    base_f = base.astype("float64")
    pct = (cand.astype("float64") - base_f) / base_f.where(base_f > 0) * 100.0
    return pct.astype("float64")


def category_deltas(kt_a: pd.DataFrame, kt_b: pd.DataFrame, steps_a: float | None = None,
                    steps_b: float | None = None) -> pd.DataFrame:
    """category, baseline_ns, candidate_ns, delta_ns, delta_pct (per step when steps given)."""
    a = _per_step(category_breakdown(kt_a), steps_a).set_index("category")
    b = _per_step(category_breakdown(kt_b), steps_b).set_index("category")
    out = pd.DataFrame({"baseline_ns": a["total_ns"], "candidate_ns": b["total_ns"]}).fillna(0)
    out["delta_ns"] = out["candidate_ns"] - out["baseline_ns"]
    out["delta_pct"] = _delta_pct(out["baseline_ns"], out["candidate_ns"])
    out = out.reindex(out["delta_ns"].abs().sort_values(ascending=False).index)
    return out.rename_axis("category").reset_index()


def kernel_deltas(kt_a: pd.DataFrame, kt_b: pd.DataFrame, steps_a: float | None = None,
                  steps_b: float | None = None) -> pd.DataFrame:
    """Per kernel name: baseline/candidate count and time, delta, status both|new|gone."""
    a = _per_step(kernel_breakdown(kt_a), steps_a).set_index("name")
    b = _per_step(kernel_breakdown(kt_b), steps_b).set_index("name")
    out = pd.DataFrame({
        "category": b["category"].combine_first(a["category"]),
        "baseline_count": a["count"], "candidate_count": b["count"],
        "baseline_ns": a["total_ns"], "candidate_ns": b["total_ns"],
    })
    status = np.where(out["baseline_ns"].isna(), "new",
                      np.where(out["candidate_ns"].isna(), "gone", "both"))
    for col in ("baseline_count", "candidate_count", "baseline_ns", "candidate_ns"):
        out[col] = out[col].fillna(0).astype("float64")
    out["delta_ns"] = out["candidate_ns"] - out["baseline_ns"]
    out["delta_pct"] = _delta_pct(out["baseline_ns"], out["candidate_ns"])
    out["status"] = status
    out = out.reindex(out["delta_ns"].abs().sort_values(ascending=False, kind="stable").index)
    return out.rename_axis("name").reset_index()


def _lookup(data: dict[str, Any], *keys: str) -> Any:
    """The first present value among env / telemetry keys."""
    for section in ("env", "telemetry"):
        block = data.get(section) or {}
        for key in keys:
            if block.get(key) is not None:
                return block[key]
    return None


def comparability_warnings(a: Any, b: Any, clock_tolerance: float = 0.05) -> list[str]:
    """What may still make comparable runs differ: software versions, clocks, throttling.
    (A different device is a hard difference: analyzers.diff_comparability.)"""
    da, db = as_record_dict(a), as_record_dict(b)
    warnings: list[str] = []
    same: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("driver", ("driver",)), ("CUDA", ("cuda",)), ("torch", ("torch",)))
    for label, keys in same:
        va, vb = _lookup(da, *keys), _lookup(db, *keys)
        if va is not None and vb is not None and va != vb:
            warnings.append(f"{label} differs: {va} vs {vb}")
    for label, keys in (("max SM clock (MHz)", ("sm_mhz_max", "sm_clock_mhz", "sm_clock_max_mhz")),
                        ("power limit (W)", ("power_limit_w",))):
        va, vb = number(_lookup(da, *keys)), number(_lookup(db, *keys))
        if va and vb and abs(va - vb) / max(va, vb) > clock_tolerance:
            warnings.append(f"{label} differs: {va:g} vs {vb:g}")
    for name, data in (("baseline", da), ("candidate", db)):
        tele = data.get("telemetry") or {}
        if tele.get("throttle_seen"):
            reasons = ", ".join(tele.get("throttle_reasons") or []) or "unknown reason"
            warnings.append(f"{name} was throttled ({reasons})")
    return warnings


def timed(record: dict[str, Any]) -> bool:
    """True when the record's latency is a timing: measured, and not under a profiler that
    serializes and replays kernels."""
    spec = record.get("spec") or {}
    median = number(((record.get("metrics") or {}).get("latency_ms") or {}).get("median"))
    return (median is not None and record.get("kind", "run") == "run"
            and not replays_kernels(spec.get("profiler")))


@dataclass(frozen=True)
class _Figure:
    name: str
    baseline_ms: float | None
    candidate_ms: float | None
    per_step: bool
    reason: str | None = None


def compared_figure(da: dict[str, Any], db: dict[str, Any], sa: RunSummary, sb: RunSummary,
                    kt_a: pd.DataFrame | None, kt_b: pd.DataFrame | None,
                    steps_a: float | None, steps_b: float | None) -> _Figure:
    """The figure both sides have: latency where both were timed, else GPU kernel time."""
    if timed(da) and timed(db):
        return _Figure("latency median", sa.latency_median_ms, sb.latency_median_ms, False)
    if kt_a is not None and kt_b is not None and len(kt_a) and len(kt_b):
        per_step = bool(steps_a and steps_b)
        total_a = float(kt_a[Col.DUR_NS].sum()) / 1e6 / (steps_a if per_step and steps_a else 1.0)
        total_b = float(kt_b[Col.DUR_NS].sum()) / 1e6 / (steps_b if per_step and steps_b else 1.0)
        untimed = [side for side, d in (("baseline", da), ("candidate", db)) if not timed(d)]
        who = "neither side has" if len(untimed) == 2 else f"the {untimed[0]} has"
        why = (f"{who} a timing (an artifact, or a run under a replaying profiler): "
               "compared by GPU kernel time")
        return _Figure("GPU time per step" if per_step else "total GPU time", total_a, total_b,
                       per_step, why)
    missing = [side for side, d, kt in (("baseline", da, kt_a), ("candidate", db, kt_b))
               if not timed(d) and (kt is None or not len(kt))]
    if missing:
        who = "neither side has" if len(missing) == 2 else f"the {missing[0]} has"
        why = f"no figure both sides have: {who} a timing or GPU kernels"
    else:
        why = "no figure both sides have: one side has only a timing, the other only GPU kernels"
    return _Figure("none", None, None, False, why)


def _same_capture(da: dict[str, Any], db: dict[str, Any], kt_a: pd.DataFrame | None,
                  kt_b: pd.DataFrame | None) -> bool:
    """The same run or artifact on both sides (a self-diff is no change, not undecidable)."""
    if da.get("id") and da.get("id") == db.get("id"):
        return True
    if kt_a is None or kt_b is None or len(kt_a) != len(kt_b) or not len(kt_a):
        return False
    cols = ["name", "dur_ns", "start_ns"]
    left = kt_a[cols].astype({"name": str}).reset_index(drop=True)
    right = kt_b[cols].astype({"name": str}).reset_index(drop=True)
    return bool(left.equals(right))


def diff_runs(baseline: Any, candidate: Any, kt_baseline: pd.DataFrame | None = None,
              kt_candidate: pd.DataFrame | None = None, steps_baseline: float | None = None,
              steps_candidate: float | None = None, force: bool = False,
              min_noise_pct: float = 1.0, n_boot: int = 4000, seed: int = 0) -> RunDiff:
    """Diff two runs (RunRecord or dict each); kernel tables and profiled step counts optional.
    ``force``: compare even when the runs are not comparable (the differences stay listed)."""
    da, db = as_record_dict(baseline), as_record_dict(candidate)
    sa, sb = run_summary(da), run_summary(db)
    comp = assess(da, db, kt_baseline, kt_candidate, steps_baseline, steps_candidate, force)
    warnings = comparability_warnings(da, db)
    fig = compared_figure(da, db, sa, sb, kt_baseline, kt_candidate, steps_baseline,
                          steps_candidate)
    refused = RunDiff(baseline=sa, candidate=sb, speedup=None, change_pct=None, ci_low=None,
                      ci_high=None, ci_method="none", noise_floor_pct=None,
                      verdict="not comparable", figure=fig.name, baseline_ms=fig.baseline_ms,
                      candidate_ms=fig.candidate_ms, comparability=comp, warnings=warnings,
                      verdict_reason="; ".join(d.text() for d in comp.differences))
    if comp.differences and not force:
        return refused

    speedup = (fig.baseline_ms / fig.candidate_ms
               if fig.baseline_ms and fig.candidate_ms else None)
    latency = fig.name == "latency median"
    ci = (bootstrap_speedup_ci(list(sa.samples_ms), list(sb.samples_ms), n_boot=n_boot, seed=seed)
          if latency else None)
    cvs = [sa.latency_cv_pct, sb.latency_cv_pct]
    repeats = latency and all(c is not None for c in cvs)
    floor = max([min_noise_pct] + [c for c in cvs if c is not None]) if repeats else None
    if fig.reason and speedup is not None:
        warnings.append(fig.reason)
    reason: str | None = None
    same = _same_capture(da, db, kt_baseline, kt_candidate)
    if speedup is None:
        verdict, reason = "inconclusive", fig.reason or "the figure is missing on one side"
    elif not comp.comparable and not force:
        verdict, reason = "inconclusive", comp.summary()
    elif floor is None:
        if same:
            verdict, reason = "identical", "the same capture on both sides"
        else:
            verdict = "inconclusive"
            reason = ("no repeats on a side (one figure each): no confidence interval, no noise "
                      "floor, so a change cannot be told from noise")
    else:
        verdict = _verdict(speedup, ci, floor) or "inconclusive"
        if ci is None:
            warnings.append("fewer than 2 latency samples in a run: no confidence interval")

    categories = kernels = None
    appeared: list[str] = []
    disappeared: list[str] = []
    if kt_baseline is not None and kt_candidate is not None:
        categories = category_deltas(kt_baseline, kt_candidate, steps_baseline, steps_candidate)
        kernels = kernel_deltas(kt_baseline, kt_candidate, steps_baseline, steps_candidate)
        appeared = kernels.loc[kernels["status"] == "new", "name"].astype(str).tolist()
        disappeared = kernels.loc[kernels["status"] == "gone", "name"].astype(str).tolist()
        if bool(steps_baseline) != bool(steps_candidate):
            warnings.append("step count known for one run only: kernel times not normalized")
    return replace(
        refused, speedup=speedup,
        change_pct=(speedup - 1.0) * 100.0 if speedup is not None else None,
        ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        ci_method="bootstrap" if ci else "none", noise_floor_pct=floor,
        verdict=verdict, verdict_reason=reason, categories=categories, kernels=kernels,
        appeared=appeared, disappeared=disappeared,
        per_step=bool(steps_baseline and steps_candidate), same_capture=same)


def regression_exceeds(diff: RunDiff, pct: float, require_significant: bool = True) -> bool:
    """True when the candidate is slower than the baseline by more than ``pct`` percent.

    The slowdown is candidate / baseline figure - 1. With ``require_significant`` (the CI gate
    default) a slowdown that the runs' noise cannot tell apart from zero does not count.
    """
    if diff.speedup is None:
        return False
    slowdown_pct = (1.0 / diff.speedup - 1.0) * 100.0
    if slowdown_pct <= pct:
        return False
    return diff.verdict == "regressed" or not require_significant


@dataclass(frozen=True)
class GateDecision:
    exit_code: int  # EXIT_OK | EXIT_REGRESSED | EXIT_NOT_COMPARABLE | EXIT_UNDECIDED
    message: str  # one line: why the gate passed or failed

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK


def gate(diff: RunDiff, pct: float) -> GateDecision:
    """The CI gate over a diff, failing closed: it passes only when it can show the candidate
    is not slower than ``pct`` percent (nsys-ai: "a comparison that could not be made has not
    shown the absence of a regression"). A change inside noise wider than ``pct`` cannot show
    that either."""
    if diff.same_capture or diff.verdict == "identical":
        return GateDecision(EXIT_OK, "gate passed: the same run on both sides")
    if diff.verdict == "not comparable":
        return GateDecision(EXIT_NOT_COMPARABLE, f"gate: not comparable: {diff.verdict_reason}; "
                            "failing (--force compares anyway)")
    if diff.verdict == "inconclusive" or diff.speedup is None:
        return GateDecision(EXIT_UNDECIDED, f"gate cannot decide ({diff.verdict_reason}); "
                            "failing: a comparison that could not be made has not shown the "
                            "absence of a regression")
    slower = (1.0 / diff.speedup - 1.0) * 100.0
    if regression_exceeds(diff, pct):
        return GateDecision(EXIT_REGRESSED, f"regression beyond {pct:g}%: {diff.figure} "
                            f"{slower:.1f}% slower ({diff.verdict}): failing")
    # The worst slowdown the measurement allows: the CI's far end, else the point plus the floor.
    if diff.ci_low:
        worst, how, by = (1.0 / diff.ci_low - 1.0) * 100.0, "the 95% CI reaches", "95% CI"
    else:
        worst = slower + (diff.noise_floor_pct or 0.0)
        how, by = "the change plus the noise floor is", "change + noise floor"
    if worst > pct:
        return GateDecision(EXIT_UNDECIDED, f"gate cannot decide: {diff.verdict}, but {how} "
                            f"{worst:.1f}% slower, beyond the {pct:g}% threshold (noise floor "
                            f"{diff.noise_floor_pct or 0:.1f}%): failing; measure with more "
                            "repeats or on a quieter machine")
    return GateDecision(EXIT_OK, f"gate passed: {diff.verdict}, at worst {worst:.1f}% slower "
                        f"({by}), within {pct:g}%")
