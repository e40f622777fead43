"""Time on the GPU timeline: busy vs idle, gaps, tiny kernels, copies, syncs, host-boundness.

Busy time is the union of activity intervals per device (kernels, memcpy, memset), so work
overlapping on several streams counts once. The window is the measured span: from the first
activity start to the last activity end, unless the caller gives one. All interval work is
vectorized numpy (sort, running maximum); Python only loops over devices.

Host-bound: a gap is "launch-bound" when the API call (launch, memset, async copy) that issued
the activity ending the gap started after the gap began — the GPU sat idle waiting for the CPU to issue work. The run is
host-bound when the idle share is high and most idle time is such gaps. Without the runtime
frame (cuda_runtime events) that cannot be told, and ``host_bound`` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

LAUNCH_RE = re.compile(r"^(cudaLaunchKernel|cudaLaunchKernelExC|cudaLaunchCooperativeKernel|"
                       r"cuLaunchKernel|cuLaunchKernelEx|cudaGraphLaunch|cuGraphLaunch)(_v\d+|_ptsz)?$")
# Calls that block the host until the device catches up.
SYNC_RE = re.compile(r"^(cudaDeviceSynchronize|cudaStreamSynchronize|cudaEventSynchronize|"
                     r"cudaMemcpy|cudaMemcpy2D|cudaMemcpy3D|cuCtxSynchronize|cuStreamSynchronize|"
                     r"cuEventSynchronize)(_v\d+|_ptds|_ptsz)?$")


@dataclass(frozen=True)
class DeviceActivity:
    device: int | None
    busy_ns: int
    idle_ns: int
    busy_share: float | None
    activities: int


@dataclass(frozen=True)
class GapStats:
    """Idle gaps between busy intervals on one device (all devices pooled)."""

    count: int
    total_ns: int
    p50_ns: float | None
    p90_ns: float | None
    p99_ns: float | None
    max_ns: int | None


@dataclass(frozen=True)
class SyncStat:
    name: str
    count: int
    total_ns: int


@dataclass(frozen=True)
class TemporalProfile:
    window_start_ns: int | None
    window_end_ns: int | None
    window_ns: int
    busy_ns: int  # summed over devices
    idle_ns: int
    idle_share: float | None  # idle / (window * devices)
    devices: list[DeviceActivity]
    gaps: GapStats
    kernel_count: int
    short_threshold_ns: int
    short_kernel_count: int
    short_kernel_share: float | None  # of kernel count
    short_kernel_time_share: float | None  # of kernel time
    activity_ns: int  # sum of all activity durations (overlap counted twice)
    memcpy_ns: int
    memcpy_share: float | None  # of activity time
    memset_ns: int
    memset_share: float | None
    syncs: list[SyncStat] = field(default_factory=list)
    sync_count: int | None = None  # None: no runtime frame given
    sync_ns: int | None = None
    launch_count: int | None = None
    launch_ns: int | None = None
    launch_bound_gap_ns: int | None = None  # idle time waiting for the next launch call
    host_bound: bool | None = None
    host_bound_reason: str = ""


def _clip_intervals(kt: pd.DataFrame, window: tuple[int, int] | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    start = kt["start_ns"].to_numpy(dtype="float64", na_value=np.nan)
    dur = kt["dur_ns"].to_numpy(dtype="float64", na_value=np.nan)
    ok = ~(np.isnan(start) | np.isnan(dur))
    rows = np.flatnonzero(ok)
    s = start[ok].astype("int64")
    e = s + dur[ok].astype("int64")
    if window is not None:
        lo, hi = int(window[0]), int(window[1])
        keep = (e > lo) & (s < hi)
        rows, s, e = rows[keep], np.maximum(s[keep], lo), np.minimum(e[keep], hi)
    else:
        lo = int(s.min()) if len(s) else 0
        hi = int(e.max()) if len(e) else 0
    dev = kt["device"].to_numpy(dtype="int64", na_value=-1)[rows]
    return rows, s, e, dev, lo, hi


def _merge(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of intervals: merged starts, ends, and the index (into s) opening each merge."""
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], run_end[last], order[first]


def _quantiles(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    if not len(values):
        return None, None, None
    q = np.quantile(values, [0.5, 0.9, 0.99])
    return float(q[0]), float(q[1]), float(q[2])


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def temporal_profile(kt: pd.DataFrame, runtime: pd.DataFrame | None = None,
                     window: tuple[int, int] | None = None, short_threshold_ns: int = 5_000,
                     host_bound_idle_share: float = 0.3,
                     host_bound_gap_share: float = 0.5) -> TemporalProfile:
    """Busy/idle, gaps, short kernels, copy share, syncs and host-boundness of ``kt``.

    ``runtime``: cuda_runtime events (name, start_ns, dur_ns, correlation), optional.
    ``window``: (start_ns, end_ns) of the measured region; default the activity span.
    """
    rows, s, e, dev, lo, hi = _clip_intervals(kt, window)
    window_ns = max(hi - lo, 0)
    device_stats: list[DeviceActivity] = []
    gap_parts: list[np.ndarray] = []
    gap_start_parts: list[np.ndarray] = []
    gap_next_rows: list[np.ndarray] = []
    for d in np.unique(dev):  # few devices: the loop is over devices, not rows
        mask = dev == d
        ms, me, opener = _merge(s[mask], e[mask])
        busy = int((me - ms).sum())
        device_stats.append(DeviceActivity(
            device=None if d < 0 else int(d), busy_ns=busy, idle_ns=window_ns - busy,
            busy_share=_share(busy, window_ns), activities=int(mask.sum())))
        gap_parts.append(ms[1:] - me[:-1])
        gap_start_parts.append(me[:-1])
        gap_next_rows.append(rows[mask][opener[1:]])
    gaps = np.concatenate(gap_parts) if gap_parts else np.zeros(0, dtype="int64")
    gap_starts = np.concatenate(gap_start_parts) if gap_start_parts else np.zeros(0, "int64")
    next_rows = np.concatenate(gap_next_rows) if gap_next_rows else np.zeros(0, "int64")
    busy_total = sum(d.busy_ns for d in device_stats)
    capacity = window_ns * max(len(device_stats), 1)
    idle_total = capacity - busy_total if device_stats else 0
    p50, p90, p99 = _quantiles(gaps)
    gap_stats = GapStats(count=int(len(gaps)), total_ns=int(gaps.sum()), p50_ns=p50,
                         p90_ns=p90, p99_ns=p99, max_ns=int(gaps.max()) if len(gaps) else None)

    kinds = kt["kind"].astype("object").to_numpy()[rows]
    durs = e - s
    is_kernel = kinds == "kernel"
    kernel_ns = int(durs[is_kernel].sum())
    short = is_kernel & (durs < short_threshold_ns)
    activity_ns = int(durs.sum())
    memcpy_ns = int(durs[kinds == "memcpy"].sum())
    memset_ns = int(durs[kinds == "memset"].sum())

    profile: dict[str, Any] = dict(
        window_start_ns=lo if len(s) else None, window_end_ns=hi if len(s) else None,
        window_ns=window_ns, busy_ns=busy_total, idle_ns=idle_total,
        idle_share=_share(idle_total, capacity), devices=device_stats, gaps=gap_stats,
        kernel_count=int(is_kernel.sum()), short_threshold_ns=int(short_threshold_ns),
        short_kernel_count=int(short.sum()),
        short_kernel_share=_share(float(short.sum()), float(is_kernel.sum())),
        short_kernel_time_share=_share(float(durs[short].sum()), float(kernel_ns)),
        activity_ns=activity_ns, memcpy_ns=memcpy_ns,
        memcpy_share=_share(memcpy_ns, activity_ns), memset_ns=memset_ns,
        memset_share=_share(memset_ns, activity_ns),
    )
    if runtime is None:
        return TemporalProfile(**profile, host_bound=None,
                               host_bound_reason="no runtime events: cannot tell host-bound")

    rt_start = runtime["start_ns"].to_numpy(dtype="float64", na_value=np.nan)
    rt_dur = runtime["dur_ns"].to_numpy(dtype="float64", na_value=0)
    rt_end = rt_start + rt_dur
    in_window = ~np.isnan(rt_start) & (rt_end > lo) & (rt_start < hi)
    names = runtime["name"].astype("object").to_numpy()
    uniq, inverse = np.unique(names.astype(str), return_inverse=True)
    sync_name = np.array([bool(SYNC_RE.match(n)) for n in uniq], dtype=bool)
    is_sync = sync_name[inverse] & in_window
    is_launch = np.array([bool(LAUNCH_RE.match(n)) for n in uniq], dtype=bool)[inverse] & in_window
    syncs = []
    for idx in np.flatnonzero(sync_name):
        sel = (inverse == idx) & in_window
        if sel.any():
            syncs.append(SyncStat(name=str(uniq[idx]), count=int(sel.sum()),
                                  total_ns=int(rt_dur[sel].sum())))
    syncs.sort(key=lambda x: -x.total_ns)

    # Launch-bound gaps: the API call that issued the activity ending the gap (a launch,
    # memset, async copy: any runtime event with its correlation id) began inside the gap.
    launch_bound = 0
    corr_k = kt["correlation"].to_numpy(dtype="float64", na_value=np.nan)[next_rows]
    corr_rt = runtime["correlation"].to_numpy(dtype="float64", na_value=np.nan)
    has_corr = ~np.isnan(corr_rt) & ~np.isnan(rt_start)
    if len(gaps) and has_corr.any():
        lookup = pd.Series(rt_start[has_corr], index=corr_rt[has_corr])
        lookup = lookup[~lookup.index.duplicated(keep="first")]
        issued_at = lookup.reindex(corr_k).to_numpy(dtype="float64")
        late = ~np.isnan(issued_at) & (issued_at >= gap_starts)
        launch_bound = int(gaps[late].sum())

    idle_share = profile["idle_share"]
    gap_share = _share(launch_bound, gap_stats.total_ns)
    if idle_share is None:
        host_bound, reason = None, "no GPU activity in the window"
    elif idle_share >= host_bound_idle_share and (gap_share or 0) >= host_bound_gap_share:
        host_bound = True
        reason = (f"GPU idle {idle_share:.0%} of the window; {gap_share:.0%} of the idle gaps "
                  "end with work the CPU issued only after the GPU went idle")
    else:
        host_bound = False
        reason = (f"GPU idle {idle_share:.0%} of the window; launch-bound gaps "
                  f"{(gap_share or 0):.0%} of idle gaps")
    return TemporalProfile(
        **profile, syncs=syncs, sync_count=int(is_sync.sum()),
        sync_ns=int(rt_dur[is_sync].sum()), launch_count=int(is_launch.sum()),
        launch_ns=int(rt_dur[is_launch].sum()), launch_bound_gap_ns=launch_bound,
        host_bound=host_bound, host_bound_reason=reason)
