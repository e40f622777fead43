"""Put HTA's numbers next to ours and say where, and by how much, they disagree (pure).

Inputs: our RunAnalysis (KernelTable + TemporalProfile), the trace's runtime frame, and HTA's
frames (workbench.api.pipeline.hta_runner.HtaResult: temporal, idle, launch stats, kernel breakdown,
overlap, plus the traces' ProfilerStep starts). A row's "why" claims only what it can show
(analyzers.hta_replay recomputes HTA's figure from our exact table):
- "HTA rounds each event inward to whole us" where ours, so rounded, equals HTA's figure, or
  where HTA is lower by no more than ~1 us per event (the rounding's typical loss);
- "HTA drops the last ProfilerStep" where ours, with only the activities HTA keeps (launched
  before the last step starts) and rounded, equals HTA's figure;
- otherwise "unexplained".
If HTA produced nothing (not installed, its TraceAnalysis failed), the comparison holds only
the error and the versions, as notes: our analysis stands alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analyzers.hta_replay import (
    HTA_LAUNCH_APIS,
    LAST_STEP,
    ROUNDING,
    HtaReplay,
    last_step_starts,
    replay_hta,
)
from profilers.parsers.schema import Col, Kind

AGREE_PCT = 0.1  # within this relative difference the two are said to agree
NEAR_PCT = 0.1  # a replay this close to HTA's figure (and closer than ours) still explains it
ROUNDING_US_PER_EVENT = 1.0  # HTA's inward rounding loses ~1 us per event (at most 2)
UNEXPLAINED = "unexplained"
_NOTHING_BUILT = ("hta", "staging", "trace_analysis")  # errors after which HTA has no figures
_WHAT = {"sum_us": "GPU time", "busy_us": "busy time", "window_us": "window",
         "idle_us": "idle time", "idle_pct": "idle share", "launches": "launch count"}


def _tolerance(predicted: float) -> float:
    # HTA works in float us read from JSON; allow half a microsecond plus float resolution.
    return 0.5 + 1e-6 * abs(predicted)


def _replayed_why(replay: HtaReplay, what: str, value: float, unit: str, exact: bool) -> str:
    shown = f"{value:,.0f} {unit}" if unit == "us" else f"{value:,.4g}{unit}"
    match = "HTA's figure" if exact else f"within {NEAR_PCT}% of HTA's figure"
    if replay.variant == ROUNDING:
        return (f"HTA rounds each event inward to whole us: our {what}, so rounded, "
                f"is {shown}, {match}")
    return (f"HTA drops the last ProfilerStep (keeps the {replay.kept:,} of {replay.total:,} "
            f"GPU activities launched before it) and rounds inward to whole us: our {what}, "
            f"so reduced, is {shown}, {match}")


def _idle_pct(replay: HtaReplay) -> float | None:
    pcts = [round(100.0 * (w - b) / w, 2) for w, b in zip(replay.window_by_rank,
                                                          replay.busy_by_rank, strict=True) if w]
    return float(np.mean(pcts)) if pcts else None


def explain(field_name: str, ours: float | None, hta: float | None, replays: list[HtaReplay],
            unit: str = "us", events: int | None = None) -> str:
    """Why HTA's figure differs from ours, by what can be shown (module docstring); ``events``
    given allows the ~1 us-per-event rounding bound where no replay matches exactly."""
    if ours is None or hta is None:
        return ""
    predictions = [(r, _idle_pct(r) if field_name == "idle_pct" else getattr(r, field_name))
                   for r in replays]
    for replay, predicted in predictions:
        tol = 0.011 if field_name == "idle_pct" else _tolerance(predicted or 0.0)
        if predicted is not None and abs(hta - predicted) <= tol:
            return _replayed_why(replay, _WHAT[field_name], float(predicted), unit, exact=True)
    # Near: the replay lands within NEAR_PCT of HTA's figure (the direction and size of the
    # cause), where an event or two are treated differently (e.g. a launch HTA does not link).
    for replay, predicted in predictions:
        if predicted and abs(hta - predicted) <= abs(predicted) * NEAR_PCT / 100.0 \
                and abs(ours - predicted) > abs(hta - predicted):
            return _replayed_why(replay, _WHAT[field_name], float(predicted), unit, exact=False)
    if events and hta < ours and ours - hta <= ROUNDING_US_PER_EVENT * events:
        return (f"HTA rounds each event inward to whole us: lower by "
                f"{(ours - hta) / events:.2f} us per event (at most ~1), as that rounding loses")
    return UNEXPLAINED


@dataclass(frozen=True)
class Agreement:
    metric: str
    unit: str
    ours: float | None
    hta: float | None
    delta: float | None  # hta - ours
    delta_pct: float | None  # (hta - ours) / ours * 100
    agree: bool | None
    why: str = ""


@dataclass
class HtaComparison:
    rows: list[Agreement] = field(default_factory=list)
    kernel_disagreements: pd.DataFrame | None = None  # name, ours_us, hta_us, delta_pct, explained_by
    idle_by_category: pd.DataFrame | None = None  # idle_category, idle_us, share (HTA)
    launch_summary: dict[str, float | None] = field(default_factory=dict)  # HTA launch stats
    overlap: pd.DataFrame | None = None
    hta_version: str | None = None
    pandas_version: str | None = None
    hta_seconds: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _row(metric: str, unit: str, ours: Any, hta: Any, why: str = "",
         tolerance_pct: float = AGREE_PCT) -> Agreement:
    o = None if ours is None or pd.isna(ours) else float(ours)
    h = None if hta is None or pd.isna(hta) else float(hta)
    if o is None or h is None:
        return Agreement(metric, unit, o, h, None, None, None, "")
    delta = h - o
    pct = delta / o * 100.0 if o else (0.0 if h == 0 else None)
    agree = pct is not None and abs(pct) <= tolerance_pct
    return Agreement(metric, unit, o, h, delta, pct, agree, "" if agree else why)


def _frame_sum(frame: pd.DataFrame | None, column: str) -> float | None:
    if frame is None or column not in frame.columns or not len(frame):
        return None
    return float(pd.to_numeric(frame[column], errors="coerce").sum())


def _hta_sum_column(hta_kernels: pd.DataFrame) -> str:
    return "sum (us)" if "sum (us)" in hta_kernels.columns else "sum"


def kernel_totals_vs_hta(kernels: pd.DataFrame, hta_kernels: pd.DataFrame,
                         replays: list[HtaReplay] | None = None) -> pd.DataFrame:
    """Per kernel name: our total and HTA's (us, summed over ranks), the difference, and which
    replay of HTA's reading (analyzers.hta_replay) reproduces HTA's figure exactly, if any."""
    ours = kernels.groupby(kernels[Col.NAME].astype(str), observed=True)["dur_ns"].sum()
    ours = ours.astype("float64") / 1000.0
    col = _hta_sum_column(hta_kernels)
    theirs = hta_kernels.groupby(hta_kernels["name"].astype(str))[col].sum().astype("float64")
    out = pd.DataFrame({"ours_us": ours, "hta_us": theirs})
    out["delta_us"] = out["hta_us"] - out["ours_us"]
    out["delta_pct"] = out["delta_us"] / out["ours_us"].where(out["ours_us"] > 0) * 100.0
    explained = pd.Series(UNEXPLAINED, index=out.index, dtype=object)
    for replay in reversed(replays or []):  # the simplest explanation wins: rounding first
        predicted = replay.per_name_us.reindex(out.index).fillna(0.0)
        hta_or_zero = out["hta_us"].fillna(0.0)
        explained[(hta_or_zero - predicted).abs() <= 0.5] = replay.variant
    out["explained_by"] = explained
    out = out.reindex(out["delta_us"].abs().sort_values(ascending=False, kind="stable").index)
    return out.rename_axis("name").reset_index()


def _our_launches(kernels: pd.DataFrame, runtime: pd.DataFrame | None) -> int | None:
    """Kernels whose correlation id matches a kernel launch call in the runtime frame."""
    from analyzers.runtime_api import is_launch

    if runtime is None or not len(runtime) or "correlation" not in runtime.columns:
        return None
    names = runtime["name"].astype("category")
    launch_names = [n for n in names.cat.categories if is_launch(str(n))]
    launch_corr = runtime.loc[names.isin(launch_names), "correlation"]
    k = kernels.loc[kernels[Col.KIND].astype(str) == Kind.KERNEL, Col.CORRELATION].dropna()
    return int(np.isin(k.to_numpy(dtype="int64"), launch_corr.dropna().to_numpy(dtype="int64")).sum())


def _names_why(per: pd.DataFrame, replays: list[HtaReplay]) -> str:
    only_ours = int(per["hta_us"].isna().sum())
    only_hta = int(per["ours_us"].isna().sum())
    hta_names = set(per.loc[per["hta_us"].notna(), "name"])
    for replay in replays:
        if replay.variant == LAST_STEP and hta_names == set(replay.per_name_us.index):
            return (f"HTA drops the last ProfilerStep: {only_ours} names run only in it or "
                    "outside the steps")
    return f"{only_ours} names only in ours, {only_hta} only in HTA's: " + UNEXPLAINED


def _per_name_why(off: pd.DataFrame) -> str:
    counts = off["explained_by"].value_counts()
    parts = [f"{int(counts.get(ROUNDING, 0))} equal ours rounded inward to whole us"]
    if counts.get(LAST_STEP, 0):
        parts.append(f"{int(counts[LAST_STEP])} ours with the last ProfilerStep dropped")
    parts.append(f"{int(counts.get(UNEXPLAINED, 0))} {UNEXPLAINED}")
    return f"of the {len(off)} that differ: " + ", ".join(parts)


def _launch_why(hta_launches: int, replays: list[HtaReplay]) -> str:
    apis = ", ".join(sorted(HTA_LAUNCH_APIS))
    for replay in replays:
        if replay.launches == hta_launches:
            where = ("" if replay.variant == ROUNDING else
                     " made before the last ProfilerStep (HTA drops that step)")
            return (f"HTA counts only {apis} calls{where}: {hta_launches:,} in this trace; ours "
                    "counts the kernels matched to any kernel-launch call")
    return UNEXPLAINED


def _failed(hta: Any) -> str | None:
    errors = dict(getattr(hta, "errors", {}) or {})
    for key in _NOTHING_BUILT:
        if key in errors:
            return errors[key]
    return None


def compare_with_hta(kernels: pd.DataFrame, temporal: Any, runtime: pd.DataFrame | None,
                     hta: Any) -> HtaComparison:
    """Rows of (metric, ours, HTA, difference, why) plus HTA's own tables, from an HtaResult."""
    out = HtaComparison(hta_version=getattr(hta, "version", None),
                        pandas_version=getattr(hta, "pandas_version", None),
                        hta_seconds=getattr(hta, "seconds", None),
                        errors=dict(getattr(hta, "errors", {}) or {}),
                        notes=list(getattr(hta, "notes", []) or []))
    failure = _failed(hta)
    if failure is not None:
        out.notes.append(f"HTA {out.hta_version or '(not installed)'} with pandas "
                         f"{out.pandas_version or '?'} produced no figures: {failure}. The "
                         "analysis above is ours and complete; only the cross-check is missing.")
        return out
    replays = replay_hta(kernels, runtime, last_step_starts(getattr(hta, "step_starts_ns", None)))
    n_events = int(kernels[Col.DUR_NS].notna().sum()) if len(kernels) else 0
    ours_total_us = float(kernels[Col.DUR_NS].sum()) / 1000.0 if len(kernels) else None
    hta_total = None
    if hta.kernels is not None and len(hta.kernels):
        hta_total = _frame_sum(hta.kernels, _hta_sum_column(hta.kernels))
    out.rows.append(_row("GPU time: kernels + memcpy + memset", "us", ours_total_us, hta_total,
                         explain("sum_us", ours_total_us, hta_total, replays, events=n_events)))
    if hta.kernels is not None and len(hta.kernels) and len(kernels):
        per = kernel_totals_vs_hta(kernels, hta.kernels, replays)
        off = per[~(per["delta_pct"].abs() <= AGREE_PCT)]
        out.kernel_disagreements = off.reset_index(drop=True)
        both = per.dropna(subset=["ours_us", "hta_us"])
        out.rows.append(_row("kernel names", "count", float(per["ours_us"].notna().sum()),
                             float(per["hta_us"].notna().sum()), _names_why(per, replays)))
        agree = int((both["delta_pct"].abs() <= AGREE_PCT).sum())
        out.rows.append(_row("kernels whose totals agree within 0.1%", "count",
                             float(len(both)), float(agree), _per_name_why(off)))
    t = hta.temporal
    if temporal is not None and t is not None and len(t):
        hta_busy = _frame_sum(t, "compute_time(us)")
        non_compute = _frame_sum(t, "non_compute_time(us)")
        if hta_busy is not None and non_compute is not None:
            hta_busy += non_compute
        ours_busy = temporal.busy_ns / 1000.0
        out.rows.append(_row("GPU busy time (union of intervals)", "us", ours_busy, hta_busy,
                             explain("busy_us", ours_busy, hta_busy, replays, events=n_events)))
        # HTA's "kernel_time(us)" is its whole window: idle + compute + non-compute.
        ours_window, hta_window = temporal.window_ns / 1000.0, _frame_sum(t, "kernel_time(us)")
        out.rows.append(_row("measured window", "us", ours_window, hta_window,
                             explain("window_us", ours_window, hta_window, replays),
                             tolerance_pct=0.01))
        ours_idle, hta_idle = temporal.idle_ns / 1000.0, _frame_sum(t, "idle_time(us)")
        out.rows.append(_row("GPU idle time", "us", ours_idle, hta_idle,
                             explain("idle_us", ours_idle, hta_idle, replays)))
        idle_pct = None if temporal.idle_share is None else temporal.idle_share * 100.0
        hta_idle_pct = (float(t["idle_time_pctg"].mean()) if "idle_time_pctg" in t.columns
                        else None)
        out.rows.append(_row("GPU idle share", "%", idle_pct, hta_idle_pct,
                             explain("idle_pct", idle_pct, hta_idle_pct, replays, unit="%")))
    if hta.idle is not None and len(hta.idle) and "idle_category" in hta.idle.columns:
        idle = hta.idle.groupby("idle_category")["idle_time"].sum().astype("float64")
        total = idle.sum()
        out.idle_by_category = pd.DataFrame({
            "idle_category": idle.index.astype(str), "idle_us": idle.to_numpy(),
            "share": idle.to_numpy() / total if total > 0 else np.full(len(idle), np.nan)})
    ls = hta.launch_stats
    if ls is not None and len(ls):
        out.launch_summary = {
            "launches": float(len(ls)),
            "median_cpu_launch_us": float(ls["cpu_duration"].median()),
            "median_gpu_duration_us": float(ls["gpu_duration"].median()),
            "median_launch_delay_us": float(ls["launch_delay"].median()),
            "p99_launch_delay_us": float(ls["launch_delay"].quantile(0.99)),
            "kernels_shorter_than_launch": float((ls["gpu_duration"] < ls["cpu_duration"]).sum()),
        }
        ours_launches = _our_launches(kernels, runtime)
        out.rows.append(_row("kernel launches matched to a runtime call", "count",
                             ours_launches, float(len(ls)), _launch_why(len(ls), replays)))
    if getattr(hta, "overlap", None) is not None:
        out.overlap = hta.overlap
    return out
