"""Put HTA's numbers next to ours and say where, and by how much, they disagree (pure).

Inputs: our RunAnalysis (KernelTable + TemporalProfile), the trace's runtime frame, and HTA's
frames (sessions.hta_runner.HtaResult: temporal, idle, launch stats, kernel breakdown,
overlap). Known reasons for disagreement are attached to each row:
- HTA rounds every event inward to whole microseconds (start up, end down: up to 2 us lost
  per event, sub-us kernels become 0); ours keeps integer ns.
- HTA's temporal window spans the ProfilerStep iterations (the whole trace when there are
  none, CPU time included); ours runs from the first to the last GPU activity.
- HTA counts a kernel as "short" against its own launch call; ours against a fixed threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

AGREE_PCT = 0.1  # within this relative difference the two are said to agree
_LAUNCH = re.compile(r"^(cudaLaunchKernel|cudaLaunchKernelExC|cuLaunchKernel|cuLaunchKernelEx|"
                     r"cudaLaunchCooperativeKernel)(_v\d+|_ptsz)?$")

WHY_FLOOR = "HTA rounds each event inward to whole us (ours: exact ns)"
WHY_WINDOW = ("HTA's window spans the profiler steps (whole trace without ProfilerStep); "
              "ours first to last GPU activity")
WHY_LAUNCH = ("HTA counts cudaLaunchKernel(ExC) and cudaMemcpy/MemsetAsync calls only, not "
              "the driver's cuLaunchKernel(Ex); ours counts every kernel launch call")


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
    kernel_disagreements: pd.DataFrame | None = None  # name, ours_us, hta_us, delta_pct
    idle_by_category: pd.DataFrame | None = None  # idle_category, idle_us, share (HTA)
    launch_summary: dict[str, float | None] = field(default_factory=dict)  # HTA launch stats
    overlap: pd.DataFrame | None = None
    hta_version: str | None = None
    hta_seconds: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _row(metric: str, unit: str, ours: Any, hta: Any, why: str = "",
         tolerance_pct: float = AGREE_PCT) -> Agreement:
    o = None if ours is None or pd.isna(ours) else float(ours)
    h = None if hta is None or pd.isna(hta) else float(hta)
    if o is None or h is None:
        return Agreement(metric, unit, o, h, None, None, None, why)
    delta = h - o
    pct = delta / o * 100.0 if o else (0.0 if h == 0 else None)
    agree = pct is not None and abs(pct) <= tolerance_pct
    return Agreement(metric, unit, o, h, delta, pct, agree, "" if agree else why)


def _frame_sum(frame: pd.DataFrame | None, column: str) -> float | None:
    if frame is None or column not in frame.columns or not len(frame):
        return None
    return float(pd.to_numeric(frame[column], errors="coerce").sum())


def kernel_totals_vs_hta(kernels: pd.DataFrame, hta_kernels: pd.DataFrame) -> pd.DataFrame:
    """Per kernel name: our total and HTA's (us, summed over ranks), and the difference."""
    ours = kernels.groupby(kernels["name"].astype(str), observed=True)["dur_ns"].sum()
    ours = ours.astype("float64") / 1000.0
    col = "sum (us)" if "sum (us)" in hta_kernels.columns else "sum"
    theirs = hta_kernels.groupby(hta_kernels["name"].astype(str))[col].sum().astype("float64")
    out = pd.DataFrame({"ours_us": ours, "hta_us": theirs})
    out["delta_us"] = out["hta_us"] - out["ours_us"]
    out["delta_pct"] = out["delta_us"] / out["ours_us"].where(out["ours_us"] > 0) * 100.0
    out = out.reindex(out["delta_us"].abs().sort_values(ascending=False, kind="stable").index)
    return out.rename_axis("name").reset_index()


def _our_launches(kernels: pd.DataFrame, runtime: pd.DataFrame | None) -> int | None:
    """Kernels whose correlation id matches a launch call in the runtime frame."""
    if runtime is None or not len(runtime) or "correlation" not in runtime.columns:
        return None
    names = runtime["name"].astype(str)
    launch_corr = runtime.loc[names.map(lambda n: bool(_LAUNCH.match(n))), "correlation"]
    k = kernels.loc[kernels["kind"].astype(str) == "kernel", "correlation"].dropna()
    return int(np.isin(k.to_numpy(dtype="int64"), launch_corr.dropna().to_numpy(dtype="int64")).sum())


def compare_with_hta(kernels: pd.DataFrame, temporal: Any, runtime: pd.DataFrame | None,
                     hta: Any) -> HtaComparison:
    """Rows of (metric, ours, HTA, difference) plus HTA's own tables, from an HtaResult."""
    out = HtaComparison(hta_version=getattr(hta, "version", None),
                        hta_seconds=getattr(hta, "seconds", None),
                        errors=dict(getattr(hta, "errors", {}) or {}),
                        notes=list(getattr(hta, "notes", []) or []))
    ours_total_us = float(kernels["dur_ns"].sum()) / 1000.0 if len(kernels) else None
    out.rows.append(_row("GPU time: kernels + memcpy + memset", "us", ours_total_us,
                         _frame_sum(hta.kernel_types, "sum"), WHY_FLOOR))
    if hta.kernels is not None and len(hta.kernels) and len(kernels):
        per = kernel_totals_vs_hta(kernels, hta.kernels)
        off = per[per["delta_pct"].abs() > AGREE_PCT]
        out.kernel_disagreements = off.reset_index(drop=True)
        both = per.dropna(subset=["ours_us", "hta_us"])
        out.rows.append(_row("kernel names", "count", float(per["ours_us"].notna().sum()),
                             float(per["hta_us"].notna().sum()), "names differ"))
        agree = int((both["delta_pct"].abs() <= AGREE_PCT).sum())
        out.rows.append(_row("kernels whose totals agree within 0.1%", "count",
                             float(len(both)), float(agree), WHY_FLOOR))
    t = hta.temporal
    if temporal is not None and t is not None and len(t):
        hta_busy = _frame_sum(t, "compute_time(us)")
        non_compute = _frame_sum(t, "non_compute_time(us)")
        if hta_busy is not None and non_compute is not None:
            hta_busy += non_compute
        out.rows.append(_row("GPU busy time", "us", temporal.busy_ns / 1000.0, hta_busy,
                             WHY_FLOOR + "; HTA sums kernel time, ours the union of intervals"))
        # HTA's "kernel_time(us)" is its whole window: idle + compute + non-compute.
        window = _row("measured window", "us", temporal.window_ns / 1000.0,
                      _frame_sum(t, "kernel_time(us)"), WHY_WINDOW, tolerance_pct=0.01)
        out.rows.append(window)
        why_idle = (WHY_WINDOW if not window.agree else
                    "same window: HTA's busy time is short by its rounding, its idle long by it")
        out.rows.append(_row("GPU idle time", "us", temporal.idle_ns / 1000.0,
                             _frame_sum(t, "idle_time(us)"), why_idle))
        idle_pct = None if temporal.idle_share is None else temporal.idle_share * 100.0
        hta_idle_pct = (float(t["idle_time_pctg"].mean()) if "idle_time_pctg" in t.columns
                        else None)
        out.rows.append(_row("GPU idle share", "%", idle_pct, hta_idle_pct, why_idle))
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
        out.rows.append(_row("kernel launches matched to a runtime call", "count",
                             _our_launches(kernels, runtime), float(len(ls)),
                             WHY_LAUNCH))
    if getattr(hta, "overlap", None) is not None:
        out.overlap = hta.overlap
    return out
