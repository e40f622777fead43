"""Time on the GPU timeline: busy vs idle, gaps, tiny kernels, copies, syncs, host-boundness.

All times are exact integer nanoseconds end to end (int64; never through float64, which at
epoch-microsecond timestamps ~1.7e18 ns cannot hold every nanosecond). All interval work is
vectorized numpy (sort, running maximum); Python only loops over devices and processes.

Busy time with several devices, two figures (shares never exceed their whole):
- ``busy_ns`` / ``idle_ns`` / ``idle_share``: the union of every activity interval of every
  device (kernels, memcpy, memset) — time when *some* device was busy; ``busy_ns <= window_ns``.
- ``devices[]`` and ``device_busy_ns`` / ``device_idle_share``: each device's own union
  (overlap on several streams of one device counts once); ``device_idle_share`` is the mean
  per-device idle share, idle device-time / (window * devices).
With one device the two agree. The window is the measured span, from the first activity start
to the last activity end, unless the caller gives one.

Host-bound: a gap is "launch-bound" when the API call (launch, memset, async copy) that issued
the activity ending the gap started after the gap began — the GPU sat idle waiting for the CPU
to issue work. The run is host-bound when the per-device idle share is high and most idle time
is such gaps. Without the runtime frame (runtime API events) that cannot be told, and
``host_bound`` is None. API names (CUDA, HIP, MTIA, XPU) come from ``analyzers.runtime_api``.

Host time blocked in synchronizations: ``sync_ns`` is the summed duration of the calls (two
threads or processes blocked at once count twice); ``sync_blocked_ns`` is the union of those
intervals clipped to the window, so ``sync_share = sync_blocked_ns / window_ns <= 1``;
``sync_processes[]`` gives the same per process (the runtime frame's ``pid``, else ``rank``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analyzers.distinct import isin_mask, value_codes
from analyzers.runtime_api import is_launch, is_sync
from profilers.parsers.lookup import lookup_rows
from profilers.parsers.schema import Col, Kind

_NA = np.iinfo(np.int64).min  # sentinel for a missing integer while columns are int64


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
    total_ns: int  # summed call durations
    blocked_ns: int = 0  # union of this name's calls, clipped to the window


@dataclass(frozen=True)
class ProcessSync:
    process: int | str | None  # pid, else rank; None when the runtime frame names neither
    count: int
    sync_ns: int
    blocked_ns: int  # union of the process's sync calls, clipped to the window
    share: float | None  # blocked_ns / window_ns, <= 1


@dataclass(frozen=True)
class TemporalProfile:
    window_start_ns: int | None
    window_end_ns: int | None
    window_ns: int
    busy_ns: int  # union over all devices (<= window_ns)
    idle_ns: int  # window_ns - busy_ns
    idle_share: float | None  # idle_ns / window_ns
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
    device_busy_ns: int = 0  # sum over devices of each device's busy union
    device_idle_ns: int = 0  # window * devices - device_busy_ns
    device_idle_share: float | None = None  # device_idle_ns / (window * devices)
    syncs: list[SyncStat] = field(default_factory=list)
    sync_count: int | None = None  # None: no runtime frame given
    sync_ns: int | None = None  # summed call durations
    sync_blocked_ns: int | None = None  # union of the sync calls in the window (<= window)
    sync_share: float | None = None  # sync_blocked_ns / window_ns (<= 1)
    sync_processes: list[ProcessSync] = field(default_factory=list)
    launch_count: int | None = None
    launch_ns: int | None = None
    launch_bound_gap_ns: int | None = None  # idle time waiting for the next launch call
    host_bound: bool | None = None
    host_bound_reason: str = ""
    # Inside the profiled steps, where the trace delimits them and time lies between them
    # (a profiler schedule's wait / warm-up): see ``within_steps``.
    step_count: int | None = None
    step_window_ns: int | None = None  # summed over the steps
    step_busy_ns: int | None = None
    step_idle_share: float | None = None


def _int_column(frame: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, valid mask) of a column, exact (no float64 on the way)."""
    if col not in frame:
        return np.zeros(len(frame), dtype=np.int64), np.zeros(len(frame), dtype=bool)
    values = frame[col]
    valid = values.notna().to_numpy()
    if values.dtype.kind == "f":  # a plain float column: only its finite, integral values
        raw = values.to_numpy(dtype="float64", na_value=np.nan)
        valid &= np.isfinite(raw) & (np.abs(raw) < 2.0**62)
        return np.where(valid, raw, 0).astype(np.int64), valid
    return values.to_numpy(dtype="int64", na_value=0), valid


def _clip_intervals(kt: pd.DataFrame, window: tuple[int, int] | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    start, ok_s = _int_column(kt, "start_ns")
    dur, ok_d = _int_column(kt, "dur_ns")
    ok = ok_s & ok_d & (dur >= 0)
    rows = np.flatnonzero(ok)
    s = start[ok]
    e = s + dur[ok]
    if window is not None:
        lo, hi = int(window[0]), int(window[1])
        keep = (e > lo) & (s < hi)
        rows, s, e = rows[keep], np.maximum(s[keep], lo), np.minimum(e[keep], hi)
    else:
        lo = int(s.min()) if len(s) else 0
        hi = int(e.max()) if len(e) else 0
    dev = kt[Col.DEVICE].to_numpy(dtype="int64", na_value=-1)[rows]
    return rows, s, e, dev, lo, hi


def _merge(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of intervals: merged starts, ends, and the index (into s) opening each merge."""
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    if not len(s):
        return s, e, order
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], run_end[last], order[first]


def _union_ns(s: np.ndarray, e: np.ndarray) -> int:
    ms, me, _ = _merge(s, e)
    return int((me - ms).sum())


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

    ``runtime``: runtime API events (name, start_ns, dur_ns, correlation; pid or rank where
    known), optional. ``window``: (start_ns, end_ns) of the measured region; default the
    activity span.
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
    busy_union = _union_ns(s, e)
    device_busy = sum(d.busy_ns for d in device_stats)
    capacity = window_ns * max(len(device_stats), 1)
    device_idle = capacity - device_busy if device_stats else 0
    p50, p90, p99 = _quantiles(gaps)
    gap_stats = GapStats(count=int(len(gaps)), total_ns=int(gaps.sum()), p50_ns=p50,
                         p90_ns=p90, p99_ns=p99, max_ns=int(gaps.max()) if len(gaps) else None)

    durs = e - s
    is_kernel = isin_mask(kt[Col.KIND], (Kind.KERNEL,))[rows]
    kernel_ns = int(durs[is_kernel].sum())
    short = is_kernel & (durs < short_threshold_ns)
    activity_ns = int(durs.sum())
    memcpy_ns = int(durs[isin_mask(kt[Col.KIND], (Kind.MEMCPY,))[rows]].sum())
    memset_ns = int(durs[isin_mask(kt[Col.KIND], (Kind.MEMSET,))[rows]].sum())

    idle_union = window_ns - busy_union if len(s) else 0
    profile: dict[str, Any] = dict(
        window_start_ns=lo if len(s) else None, window_end_ns=hi if len(s) else None,
        window_ns=window_ns, busy_ns=busy_union, idle_ns=idle_union,
        idle_share=_share(idle_union, window_ns), devices=device_stats, gaps=gap_stats,
        kernel_count=int(is_kernel.sum()), short_threshold_ns=int(short_threshold_ns),
        short_kernel_count=int(short.sum()),
        short_kernel_share=_share(float(short.sum()), float(is_kernel.sum())),
        short_kernel_time_share=_share(float(durs[short].sum()), float(kernel_ns)),
        activity_ns=activity_ns, memcpy_ns=memcpy_ns,
        memcpy_share=_share(memcpy_ns, activity_ns), memset_ns=memset_ns,
        memset_share=_share(memset_ns, activity_ns), device_busy_ns=device_busy,
        device_idle_ns=device_idle, device_idle_share=_share(device_idle, capacity),
    )
    if runtime is None:
        return TemporalProfile(**profile, host_bound=None,
                               host_bound_reason="no runtime events: cannot tell host-bound")
    return _with_runtime(profile, kt, runtime, lo, hi, gaps, gap_starts, next_rows, gap_stats,
                         host_bound_idle_share, host_bound_gap_share)


def _process_keys(runtime: pd.DataFrame, rows: np.ndarray) -> np.ndarray | None:
    """The process (pid, else rank) of the runtime calls at ``rows`` (a mask) as objects:
    only those rows are boxed (a 1 GB trace's 546k calls took 43 ms, its syncs take 1)."""
    for col in ("pid", "rank"):
        if col in runtime:
            return runtime[col][rows].astype("object").to_numpy()
    return None


def _with_runtime(profile: dict[str, Any], kt: pd.DataFrame, runtime: pd.DataFrame, lo: int,
                  hi: int, gaps: np.ndarray, gap_starts: np.ndarray, next_rows: np.ndarray,
                  gap_stats: GapStats, host_bound_idle_share: float,
                  host_bound_gap_share: float) -> TemporalProfile:
    window_ns = profile["window_ns"]
    rt_start, has_start = _int_column(runtime, "start_ns")
    rt_dur, has_dur = _int_column(runtime, "dur_ns")
    rt_dur = np.where(has_dur & (rt_dur > 0), rt_dur, 0)
    rt_end = rt_start + rt_dur
    in_window = has_start & (rt_end > lo) & (rt_start < hi)
    # Per distinct name, not per call (codes, never a string per call); the names sorted, as
    # the per-name sync lines have always been listed.
    codes, values = value_codes(runtime["name"])
    texts = np.array([str(v) for v in values] + ["nan"], dtype=object)  # last: no name
    order = np.argsort(texts, kind="stable")
    uniq = texts[order]
    inverse = np.empty(len(texts), dtype=np.int64)
    inverse[order] = np.arange(len(texts))
    inverse = inverse[codes]
    sync_name = np.array([is_sync(n) for n in uniq], dtype=bool)
    is_sync_row = sync_name[inverse] & in_window
    is_launch_row = np.array([is_launch(n) for n in uniq], dtype=bool)[inverse] & in_window
    clip_s, clip_e = np.maximum(rt_start, lo), np.minimum(rt_end, hi)
    syncs = []
    for idx in np.flatnonzero(sync_name):
        sel = (inverse == idx) & in_window
        if sel.any():
            syncs.append(SyncStat(name=str(uniq[idx]), count=int(sel.sum()),
                                  total_ns=int(rt_dur[sel].sum()),
                                  blocked_ns=_union_ns(clip_s[sel], clip_e[sel])))
    syncs.sort(key=lambda x: -x.total_ns)
    blocked = _union_ns(clip_s[is_sync_row], clip_e[is_sync_row])
    processes: list[ProcessSync] = []
    keys = _process_keys(runtime, is_sync_row) if is_sync_row.any() else None
    if keys is not None:
        proc_codes, proc_values = pd.factorize(keys, use_na_sentinel=True)
        ss, se, sd = clip_s[is_sync_row], clip_e[is_sync_row], rt_dur[is_sync_row]
        for code in np.unique(proc_codes):
            sel = proc_codes == code
            value = None if code < 0 else proc_values[code]
            proc_blocked = _union_ns(ss[sel], se[sel])
            processes.append(ProcessSync(
                process=value if isinstance(value, str) or value is None else int(value),
                count=int(sel.sum()), sync_ns=int(sd[sel].sum()), blocked_ns=proc_blocked,
                share=_share(proc_blocked, window_ns)))
        processes.sort(key=lambda p: -p.blocked_ns)

    # Launch-bound gaps: the API call that issued the activity ending the gap (a launch,
    # memset, async copy: any runtime event with its correlation id) began inside the gap.
    launch_bound = 0
    corr_k, has_ck = _int_column(kt, "correlation")
    corr_rt, has_crt = _int_column(runtime, "correlation")
    has_corr = has_crt & has_start
    if len(gaps) and has_corr.any():
        wanted = np.where(has_ck[next_rows], corr_k[next_rows], _NA)
        row = lookup_rows(corr_rt[has_corr], wanted, keep="first")
        found = (row >= 0) & has_ck[next_rows]
        issued_at = rt_start[has_corr][np.maximum(row, 0)]
        late = found & (issued_at >= gap_starts)
        launch_bound = int(gaps[late].sum())

    idle_share = profile["device_idle_share"]
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
        **profile, syncs=syncs, sync_count=int(is_sync_row.sum()),
        sync_ns=int(rt_dur[is_sync_row].sum()), sync_blocked_ns=blocked,
        sync_share=_share(blocked, window_ns), sync_processes=processes,
        launch_count=int(is_launch_row.sum()), launch_ns=int(rt_dur[is_launch_row].sum()),
        launch_bound_gap_ns=launch_bound, host_bound=host_bound, host_bound_reason=reason)


# Below this share of the window inside the steps, the rest lies between them.
_STEPS_COVER = 0.9


def within_steps(profile: TemporalProfile, timeline: Any, host_bound_idle_share: float = 0.3,
                 host_bound_gap_share: float = 0.5) -> TemporalProfile:
    """``profile`` with the figures inside the profiled steps, where ranges delimit them and
    they cover less than 90% of the window: the time between steps (a profiler schedule's
    wait and warm-up, the harness between repeats) is no idle GPU of the workload's, so the
    host-bound verdict is judged inside the steps (the H100 fixture's window is 99.5% idle
    from the 1.06 s before its second step; its steps are 0.5% idle). ``timeline``: an
    ``analyzers.step_timeline.StepTimeline``."""
    if (timeline is None or timeline.marker is None or timeline.window_ns <= 0
            or profile.window_ns <= 0
            or timeline.window_ns >= _STEPS_COVER * profile.window_ns):
        return profile
    idle = max(timeline.window_ns - timeline.busy_ns, 0)
    idle_share = idle / timeline.window_ns
    gap_share = (None if timeline.launch_gap_ns is None
                 else timeline.launch_gap_ns / timeline.gap_ns if timeline.gap_ns > 0 else 0.0)
    where = (f"GPU idle {idle_share:.1%} inside the {timeline.steps} profiled step"
             f"{'s' if timeline.steps != 1 else ''} ({timeline.marker}); the window's other "
             f"{1 - timeline.window_ns / profile.window_ns:.1%} lies outside them")
    if gap_share is None:
        host_bound, reason = profile.host_bound, where + "; no launch times to judge the gaps"
        if idle_share < host_bound_idle_share:
            host_bound = False
    elif idle_share >= host_bound_idle_share and gap_share >= host_bound_gap_share:
        host_bound, reason = True, (f"{where}; {gap_share:.0%} of the idle gaps end with work "
                                    "the CPU issued only after the GPU went idle")
    else:
        host_bound, reason = False, f"{where}; launch-bound gaps {gap_share:.0%} of idle gaps"
    return replace(profile, step_count=timeline.steps, step_window_ns=int(timeline.window_ns),
                   step_busy_ns=int(timeline.busy_ns), step_idle_share=idle_share,
                   host_bound=host_bound, host_bound_reason=reason)
