"""The profiled steps on the GPU timeline: which activities ran inside a step, and how each
step's wall time splits into GPU busy time, idle gaps between activities and host time.

Steps are the trace's step ranges: ``ProfilerStep#N`` (torch.profiler's schedule), else our
workloads' ``aiperf:step`` ranges; host-side ranges are preferred to their GPU copies. Step i
runs from its start to the end of its GPU work — at most to the next step's start, so the time
BETWEEN profiled steps (the harness's synchronizations, the profiler's own work) is never idle
time of a step. Without step ranges the trace's activity span is one step (noted).

A first profiled step over 1.25x the median of the others is left out (noted): it carries the
profiler's start-up, which only shows as "overhead" events when the trace has them.

Inside a step: host time is the part before its first GPU activity and after its last (the
GPU has nothing to run while the host prepares or finishes the step); idle gaps are the holes
between activities; busy is their union. Profiler overhead ranges (Kineto's ``overhead``
events, when the annotations frame carries them) that fall in host or idle time are removed
from the step: they are the profiler's, not the model's. Invariant, per step and in total:
window = busy + gaps + host.

One device: a multi-GPU trace is budgeted on the device (and rank) with the most kernel time.
All interval work is vectorized numpy over the activities (sorted by start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profilers.parsers.lookup import lookup_rows
from profilers.parsers.schema import Col

# The first profiled step carries the profiler's start-up (buffer requests inflate its host
# time); when its events say so (Kineto "overhead") that time is removed, else a first step
# this much longer than the others' median is left out.
FIRST_STEP_OUTLIER = 1.25
STEP_MARKERS = (("ProfilerStep#N", re.compile(r"^ProfilerStep#\d+$")),
                ("aiperf:step", re.compile(r"^aiperf:step$")))
_KIND_COLUMNS = ("kind", "cat", "category")


@dataclass(frozen=True)
class StepTimeline:
    steps: int  # 1 without step ranges
    marker: str | None  # which ranges delimited the steps; None: the activity span
    window_ns: int  # summed over the steps, profiler overhead removed
    busy_ns: int  # union of activity intervals inside the steps
    gap_ns: int  # idle between activities inside the steps
    gap_count: int
    launch_gap_ns: int | None  # the part of gap_ns ended by a launch issued after the gap began
    host_ns: int  # before the first / after the last activity of each step
    overhead_ns: int  # profiler overhead removed from host and idle time
    step_ns: np.ndarray  # each step's window (overhead removed), for spread
    in_step: np.ndarray  # bool per KernelTable row: the activity started inside a step
    inside_ns: np.ndarray  # per row: its duration clipped to its step (0 outside)
    device: int | None
    rank: int | None
    notes: tuple[str, ...] = ()


def _kind_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in _KIND_COLUMNS if c in frame.columns), None)


def step_ranges(annotations: pd.DataFrame | None, ops: pd.DataFrame | None = None,
                rank: int | None = None) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(starts, ends, marker) of the step ranges, sorted; None when the trace has none.

    ``annotations``: name, start_ns, dur_ns (+ optional kind/cat: GPU copies say "gpu", and
    rank). ``ops``: CPU ops, where older torch versions put ProfilerStep#N."""
    frames = [f for f in (annotations, ops) if f is not None and len(f)]
    # Match the distinct names only (a big trace has 10^6 ops and a few thousand names).
    coded = [(f, f["name"].astype("category").array) for f in frames]
    for marker, pattern in STEP_MARKERS:
        for frame, names in coded:
            matches = np.array([bool(pattern.match(str(n))) for n in names.categories] + [False])
            hit = matches[np.asarray(names.codes, dtype=np.int64)]
            if rank is not None and "rank" in frame.columns:
                ranks = frame["rank"].to_numpy(dtype="float64", na_value=np.nan)
                hit = hit & (np.isnan(ranks) | (ranks == rank))
            kind = _kind_column(frame)
            if kind is not None and hit.any():
                gpu = frame[kind].astype("object").astype(str).str.contains("gpu").to_numpy()
                if (hit & ~gpu).any():
                    hit = hit & ~gpu
            if not hit.any():
                continue
            start = frame["start_ns"].to_numpy(dtype="float64", na_value=np.nan)[hit]
            dur = frame["dur_ns"].to_numpy(dtype="float64", na_value=np.nan)[hit]
            ok = ~np.isnan(start) & ~np.isnan(dur) & (dur >= 0)
            if not ok.any():
                continue
            start, end = start[ok].astype(np.int64), (start[ok] + dur[ok]).astype(np.int64)
            order = np.argsort(start, kind="stable")
            start, end = start[order], end[order]
            keep = np.ones(len(start), dtype=bool)
            keep[1:] = start[1:] != start[:-1]  # a range recorded twice counts once
            return start[keep], end[keep], marker
    return None


def overhead_ranges(annotations: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Merged profiler-overhead intervals (rows whose kind/cat is "overhead")."""
    empty = np.zeros(0, dtype=np.int64)
    if annotations is None or not len(annotations):
        return empty, empty
    kind = _kind_column(annotations)
    if kind is None:
        return empty, empty
    hit = (annotations[kind].astype("object").astype(str) == "overhead").to_numpy()
    start = annotations["start_ns"].to_numpy(dtype="float64", na_value=np.nan)[hit]
    dur = annotations["dur_ns"].to_numpy(dtype="float64", na_value=np.nan)[hit]
    ok = ~np.isnan(start) & ~np.isnan(dur) & (dur > 0)
    return _merge(start[ok].astype(np.int64), (start[ok] + dur[ok]).astype(np.int64))


def _merge(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(s):
        return s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], run_end[last]


def _covered(bs: np.ndarray, be: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Measure of the disjoint sorted intervals (bs, be) below each time ``t``."""
    if not len(bs):
        return np.zeros(len(t), dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(be - bs)])
    k = np.searchsorted(bs, t, side="right") - 1
    inside = np.clip(t - bs[np.maximum(k, 0)], 0, (be - bs)[np.maximum(k, 0)])
    return np.where(k >= 0, cum[np.maximum(k, 0)] + inside, 0)


def _span_segments(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Without step ranges: starts of the activity span's segments, split at idle stretches
    longer than all GPU work together. No step idles longer than everything it computes in one
    stretch (a host-bound step idles in many short gaps), so such a stretch is set-up or the
    time between steps (a 1.06 s gap in a 20 ms trace read as "idle 100%")."""
    ms, me = _merge(s, e)
    gaps = ms[1:] - me[:-1]
    big = np.flatnonzero(gaps > (me - ms).sum())
    return np.concatenate([ms[:1], ms[big + 1]])


def _busiest(kt: pd.DataFrame) -> tuple[np.ndarray, int | None, int | None, list[str]]:
    """Rows of the device (and rank) with the most activity time."""
    dur = kt[Col.DUR_NS].to_numpy(dtype="float64", na_value=0.0)
    dev = kt[Col.DEVICE].to_numpy(dtype="int64", na_value=-1)
    rank = kt[Col.RANK].to_numpy(dtype="int64", na_value=-1)
    keys = rank * (1 << 20) + (dev + 1)
    uniq, inv = np.unique(keys, return_inverse=True)
    if len(uniq) <= 1:
        d, r = (int(dev[0]), int(rank[0])) if len(dev) else (-1, -1)
        return np.ones(len(kt), dtype=bool), (d if d >= 0 else None), (r if r >= 0 else None), []
    best = int(np.argmax(np.bincount(inv, weights=dur)))
    d, r = int(uniq[best] % (1 << 20)) - 1, int(uniq[best] // (1 << 20))
    note = (f"the budget covers device {d if d >= 0 else 'n/a'} (rank {r if r >= 0 else 'n/a'}), "
            f"the one with the most GPU time; {len(uniq) - 1} other device(s) left out")
    return inv == best, (d if d >= 0 else None), (r if r >= 0 else None), [note]


def step_timeline(kt: pd.DataFrame, annotations: pd.DataFrame | None = None,
                  ops: pd.DataFrame | None = None,
                  runtime: pd.DataFrame | None = None) -> StepTimeline | None:
    """The steps' decomposition; None when no activity has a start time."""
    start_all = kt[Col.START_NS].to_numpy(dtype="float64", na_value=np.nan)
    dur_all = kt[Col.DUR_NS].to_numpy(dtype="float64", na_value=np.nan)
    mine, device, rank, notes = _busiest(kt)
    ok = mine & ~np.isnan(start_all) & ~np.isnan(dur_all) & (dur_all >= 0)
    if not ok.any():
        return None
    rows = np.flatnonzero(ok)
    s = start_all[rows].astype(np.int64)
    e = s + dur_all[rows].astype(np.int64)
    order = np.argsort(s, kind="stable")
    rows, s, e = rows[order], s[order], e[order]

    found = step_ranges(annotations, ops, rank)
    if found is None:
        found = _repeated_steps(kt, runtime)
        if found is not None:
            notes.append("no step ranges in the trace: the steps are the repeats of its kernel "
                         "sequence (analyzers.advice.steps)")
    if found is None:
        w0, marker = _span_segments(s, e), None
        cpu_end = w0
        skipped = len(w0) - 1
        notes.append("no step ranges (ProfilerStep#N or aiperf:step) in the trace: its activity "
                     "span counts as one step"
                     + (f", less {skipped} idle stretch(es) each longer than all its GPU work "
                        "together (set-up or time between steps, not idle time of a step)"
                        if skipped else ""))
    else:
        w0, cpu_end, marker = found
    timeline = _decompose(kt, rows, s, e, w0, cpu_end, marker, annotations, runtime,
                          device, rank, list(notes))
    others = timeline.step_ns[1:]
    if marker is not None and len(others) >= 2 and \
            timeline.step_ns[0] > FIRST_STEP_OUTLIER * float(np.median(others)):
        notes.append(f"the first profiled step ({timeline.step_ns[0] / 1e3:.0f} us) is left out: "
                     f"over {FIRST_STEP_OUTLIER:g}x the median of the others "
                     f"({float(np.median(others)) / 1e3:.0f} us), the profiler's start-up")
        timeline = _decompose(kt, rows, s, e, w0[1:], cpu_end[1:], marker, annotations,
                              runtime, device, rank, notes)
    return timeline


def _repeated_steps(kt: pd.DataFrame, runtime: pd.DataFrame | None
                    ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Without step ranges, the steps the advice finds as the repeating block of the kernel
    sequence (one step finder for the budget and the advice): (starts, ends, marker)."""
    from analyzers.advice.steps import step_timeline as repeated

    found = repeated(kt, runtime)
    if found is None or found.steps < 2:
        return None
    windows = np.asarray(found.windows, dtype=np.int64).reshape(-1, 2)
    return windows[:, 0], windows[:, 1], "repeating kernel sequence"


def _decompose(kt: pd.DataFrame, rows: np.ndarray, s: np.ndarray, e: np.ndarray,
               w0: np.ndarray, cpu_end: np.ndarray, marker: str | None,
               annotations: pd.DataFrame | None, runtime: pd.DataFrame | None,
               device: int | None, rank: int | None, notes: list[str]) -> StepTimeline:
    """Activities (sorted by start) into the steps starting at ``w0``."""
    n = len(kt)
    # Each activity belongs to the step in whose [start, next start) it starts.
    step_of = np.searchsorted(w0, s, side="right") - 1
    inside = step_of >= 0
    last_end = np.full(len(w0), np.iinfo(np.int64).min)
    np.maximum.at(last_end, step_of[inside], e[inside])
    next_start = np.append(w0[1:], np.iinfo(np.int64).max)
    w1 = np.minimum(next_start, np.maximum(cpu_end, last_end))
    inside &= s < w1[np.maximum(step_of, 0)]
    rows, s, step_of = rows[inside], s[inside], step_of[inside]
    e = np.minimum(e[inside], w1[step_of])

    # Union of intervals per step: the windows are disjoint, so one pass over the sorted
    # activities suffices, with a new interval forced at each step's first activity.
    run_end = np.maximum.accumulate(e) if len(e) else e
    new = np.ones(len(s), dtype=bool)
    if len(s) > 1:
        new[1:] = (s[1:] > run_end[:-1]) | (step_of[1:] != step_of[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1) if len(first) else first
    ms, me, mstep, opener = s[first], run_end[last], step_of[first], rows[first]
    busy = np.bincount(mstep, weights=me - ms, minlength=len(w0)).astype(np.int64)
    has = np.bincount(mstep, minlength=len(w0)) > 0
    first_start = w1.copy()
    np.minimum.at(first_start, mstep, ms)
    act_end = w0.copy()
    np.maximum.at(act_end, mstep, me)
    lead = np.where(has, first_start - w0, w1 - w0)
    trail = np.where(has, w1 - act_end, 0)
    # Gaps between merged intervals of the same step.
    same = mstep[1:] == mstep[:-1]
    g0, g1 = me[:-1][same], ms[1:][same]
    gap_next = opener[1:][same]

    ob, oe = overhead_ranges(annotations)

    def overhead_in(a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
        return _covered(ob, oe, a1) - _covered(ob, oe, a0)

    over_lead = overhead_in(w0, np.where(has, first_start, w1))
    over_trail = np.where(has, overhead_in(act_end, w1), 0)
    over_gaps = overhead_in(g0, g1)
    gap_step = mstep[1:][same]
    over_gaps_by_step = np.bincount(gap_step, weights=over_gaps, minlength=len(w0))
    gap_total = int((g1 - g0).sum() - over_gaps.sum())
    host = int((lead - over_lead).sum() + (trail - over_trail).sum())
    overhead = int(over_lead.sum() + over_trail.sum() + over_gaps.sum())
    step_ns = (w1 - w0) - over_lead - over_trail - over_gaps_by_step.astype(np.int64)
    if marker is None:  # the segments of the span are one step
        step_ns = np.array([int(step_ns.sum())])
    if overhead:
        notes.append(f"profiler overhead inside the steps removed: {overhead / 1e3:.1f} us "
                     "in total (the profiler's buffer requests, not the model's time)")

    launch_gap: int | None = None
    if runtime is not None and len(runtime) and "correlation" in kt.columns and len(g0):
        corr_k = kt[Col.CORRELATION].to_numpy(dtype="float64", na_value=np.nan)[gap_next]
        corr_rt = runtime["correlation"].to_numpy(dtype="float64", na_value=np.nan)
        rt_start = runtime["start_ns"].to_numpy(dtype="float64", na_value=np.nan)
        has_corr = ~np.isnan(corr_rt) & ~np.isnan(rt_start)
        if has_corr.any():
            row = lookup_rows(corr_rt[has_corr], corr_k, keep="first")
            issued = np.where(row >= 0, rt_start[has_corr][np.maximum(row, 0)], np.nan)
            late = ~np.isnan(issued) & (issued >= g0)
            launch_gap = int(((g1 - g0) - over_gaps)[late].sum())

    in_step = np.zeros(n, dtype=bool)
    in_step[rows] = True
    inside_ns = np.zeros(n, dtype=np.int64)
    inside_ns[rows] = e - s
    return StepTimeline(
        steps=len(w0) if marker is not None else 1, marker=marker, window_ns=int(step_ns.sum()), busy_ns=int(busy.sum()),
        gap_ns=gap_total, gap_count=int(len(g0)), launch_gap_ns=launch_gap, host_ns=host,
        overhead_ns=overhead, step_ns=step_ns, in_step=in_step, inside_ns=inside_ns,
        device=device, rank=rank, notes=tuple(notes))
