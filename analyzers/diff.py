"""Compare two runs: is the candidate faster, by how much, and is that more than noise?

Speedup = baseline median latency / candidate median latency (> 1 means the candidate is
faster). Its 95% confidence interval comes from a seeded percentile bootstrap over the per-repeat
samples (metrics.latency_ms.samples), so the result is deterministic. Verdict: "within noise"
when the interval straddles 1.0 or the change is smaller than the noise floor (the larger CV of
the two runs, at least ``min_noise_pct``), else "improved" / "regressed".

Kernel-level deltas come from two KernelTables, per step when step counts are given. Warnings
flag runs that are not comparable like for like (device, driver, clocks, power limit,
throttling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analyzers.breakdown import category_breakdown, kernel_breakdown
from analyzers.summary import RunSummary, as_record_dict, number, run_summary

VERDICTS = ("improved", "regressed", "within noise")


@dataclass(frozen=True)
class RunDiff:
    baseline: RunSummary
    candidate: RunSummary
    speedup: float | None  # baseline median / candidate median
    change_pct: float | None  # (speedup - 1) * 100; > 0 is faster
    ci_low: float | None  # 95% CI of the speedup
    ci_high: float | None
    ci_method: str  # bootstrap | none
    noise_floor_pct: float
    verdict: str | None  # improved | regressed | within noise; None when latency is missing
    categories: pd.DataFrame | None = None  # category, baseline_ns, candidate_ns, delta_ns, delta_pct
    kernels: pd.DataFrame | None = None  # name, category, baseline_*, candidate_*, delta_*, status
    appeared: list[str] = field(default_factory=list)
    disappeared: list[str] = field(default_factory=list)
    per_step: bool = False
    warnings: list[str] = field(default_factory=list)


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
    """Reasons the two runs may not compare like for like."""
    da, db = as_record_dict(a), as_record_dict(b)
    warnings: list[str] = []
    same: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("device", ("device_name",)), ("driver", ("driver",)), ("CUDA", ("cuda",)),
        ("torch", ("torch",)))
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


def diff_runs(baseline: Any, candidate: Any, kt_baseline: pd.DataFrame | None = None,
              kt_candidate: pd.DataFrame | None = None, steps_baseline: float | None = None,
              steps_candidate: float | None = None, min_noise_pct: float = 1.0,
              n_boot: int = 4000, seed: int = 0) -> RunDiff:
    """Diff two runs (RunRecord or dict each); kernel tables optional."""
    sa, sb = run_summary(baseline), run_summary(candidate)
    speedup = None
    if sa.latency_median_ms and sb.latency_median_ms:
        speedup = sa.latency_median_ms / sb.latency_median_ms
    ci = bootstrap_speedup_ci(list(sa.samples_ms), list(sb.samples_ms), n_boot=n_boot, seed=seed)
    floor = max([min_noise_pct] + [c for c in (sa.latency_cv_pct, sb.latency_cv_pct) if c])
    warnings = comparability_warnings(baseline, candidate)
    if speedup is None:
        warnings.append("median latency missing in one run: no speedup")
    elif ci is None:
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
    return RunDiff(
        baseline=sa, candidate=sb, speedup=speedup,
        change_pct=(speedup - 1.0) * 100.0 if speedup is not None else None,
        ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        ci_method="bootstrap" if ci else "none", noise_floor_pct=floor,
        verdict=_verdict(speedup, ci, floor), categories=categories, kernels=kernels,
        appeared=appeared, disappeared=disappeared,
        per_step=bool(steps_baseline and steps_candidate), warnings=warnings)


def regression_exceeds(diff: RunDiff, pct: float, require_significant: bool = True) -> bool:
    """True when the candidate is slower than the baseline by more than ``pct`` percent.

    The slowdown is candidate / baseline latency - 1. With ``require_significant`` (the CI gate
    default) a slowdown that the runs' noise cannot tell apart from zero does not fail the gate.
    """
    if diff.speedup is None:
        return False
    slowdown_pct = (1.0 / diff.speedup - 1.0) * 100.0
    if slowdown_pct <= pct:
        return False
    return diff.verdict == "regressed" or not require_significant
