"""The profiled steps inside a trace, so that advice speaks of the step and not of the window.

A trace's window holds more than the steps: the measurement harness synchronizes and times
between them, and a first step may be cold (cuDNN plan building, lazy module loading). Idle
time there is no idle time of a step, and a synchronization there is no synchronization in the
step. A decode or training step launches the same kernel sequence every time, so the steps
are found as the repeating block of the kernel-name sequence: a kernel launched exactly k
times at evenly spaced positions gives the period; the block boundary is put where the GPU
waits longest between blocks (the harness's gap). Where no sequence repeats (per-token expert
loops, one-step traces) there are no steps and the callers fall back to the whole window.

Per step: its GPU window (first kernel start to last kernel end), busy time (union of all
activities in the window), idle time, the idle time spent waiting for the CPU to issue the
next launch (the launch call began after the GPU went idle), and, with runtime events, its host
span (first launch call to last launch call). Pure and vectorized; bounded work (a few
candidate step counts, each checked in O(kernels)).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analyzers.distinct import isin_mask, value_codes
from analyzers.runtime_api import is_sync
from profilers.parsers.lookup import lookup_rows
from profilers.parsers.schema import Col, Kind

MAX_STEP_COUNT_CANDIDATES = 8
MIN_COVERAGE = 0.8  # the steps hold at least this share of the kernels (prefix/suffix allowed)
COLD_STEP_FACTOR = 2.0  # a step this many times longer than the median is a cold step
DEVICE_SYNC = re.compile(r"^(cudaDeviceSynchronize|cuCtxSynchronize|hipDeviceSynchronize)")


@dataclass(frozen=True)
class SyncCall:
    name: str
    start_ns: int
    dur_ns: int
    in_step: bool  # inside a step's host span, or a stream/event sync between steps


@dataclass(frozen=True)
class StepTimeline:
    method: str  # how the steps were found
    windows: tuple[tuple[int, int], ...]  # GPU window of each step [start, end)
    busy_ns: tuple[int, ...]  # union of GPU activity inside each window
    launch_wait_ns: tuple[int, ...]  # idle inside the window waiting for the next launch call
    kernels_per_step: int
    host_spans: tuple[tuple[int, int], ...] | None = None  # first..last launch call per step
    syncs: tuple[SyncCall, ...] = ()  # blocking calls from the first step's start on

    @property
    def steps(self) -> int:
        return len(self.windows)

    @property
    def wall_ns(self) -> tuple[int, ...]:
        return tuple(int(e - s) for s, e in self.windows)

    @property
    def idle_ns(self) -> tuple[int, ...]:
        return tuple(max(w - b, 0) for w, b in zip(self.wall_ns, self.busy_ns, strict=True))

    @property
    def median_step(self) -> int:
        """Index of the median step by wall time (robust to one cold step)."""
        order = np.argsort(np.asarray(self.wall_ns), kind="stable")
        return int(order[(len(order) - 1) // 2])

    @property
    def cold_steps(self) -> tuple[int, ...]:
        typical = self.wall_ns[self.median_step]
        return tuple(i for i, w in enumerate(self.wall_ns) if w > COLD_STEP_FACTOR * typical)

    def in_step_syncs(self) -> list[SyncCall]:
        return [s for s in self.syncs if s.in_step]


def _kernel_order(kt: pd.DataFrame) -> np.ndarray:
    start = kt[Col.START_NS].to_numpy(dtype="float64", na_value=np.nan)
    rows = np.flatnonzero(isin_mask(kt[Col.KIND], (Kind.KERNEL,)) & ~np.isnan(start))
    return rows[np.argsort(start[rows], kind="stable")]


def _name_sequence(names: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The kernels' names at ``rows`` as integers, numbered in order of first appearance
    (as ``pd.factorize`` of the name strings numbers them): one code per distinct name."""
    codes, values = value_codes(names)
    texts = np.array([str(v) for v in values], dtype=object)
    # Distinct values with the same text are one name; a missing name is one more.
    _, same = np.unique(texts, return_inverse=True) if len(texts) else (texts, np.zeros(0, int))
    merged = np.append(np.asarray(same, dtype=np.int64), -1)[codes[rows]]
    seq = pd.factorize(merged)[0]
    seq[merged < 0] = -1  # a missing name stays missing (factorize's NA code)
    return seq


def _period(codes: np.ndarray) -> tuple[int, int, list[int]] | None:
    """(k steps, period P, valid block starts) of a sequence made of k equal blocks."""
    n = len(codes)
    uniq, counts = np.unique(codes, return_counts=True)
    candidates = sorted({int(c) for c in counts if 2 <= c <= n // 2})[:MAX_STEP_COUNT_CANDIDATES]
    for k in candidates:
        for code in uniq[counts == k][:3]:  # a few anchors per candidate
            pos = np.flatnonzero(codes == code)
            steps = np.diff(pos)
            if not len(steps) or steps.min() != steps.max():
                continue
            period = int(steps[0])
            if k * period < MIN_COVERAGE * n:  # a repeat inside the steps, not the steps
                continue
            lo, hi = max(int(pos[0]) - period + 1, 0), min(int(pos[0]), n - k * period)
            if hi < lo:
                continue
            # same[t]: position t repeats every period for k blocks; a block start s is valid
            # when same holds on all of [s, s + period) (O(k x n), not O(n^2))
            t = np.arange(lo, hi + period)
            same = np.ones(len(t), dtype=bool)
            for i in range(1, k):
                same &= codes[t + i * period] == codes[t]
            bad = np.concatenate(([0], np.cumsum(~same)))
            starts = [int(x) + lo for x in np.flatnonzero(bad[period:] - bad[:-period] == 0)]
            if starts:
                return k, period, starts
    return None


def _busy_in(s: np.ndarray, e: np.ndarray, lo: int, hi: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Union of [s, e) clipped to [lo, hi): busy ns, and the merged intervals."""
    keep = (e > lo) & (s < hi)
    s, e = np.maximum(s[keep], lo), np.minimum(e[keep], hi)
    if not len(s):
        return 0, s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > e[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    ms, me = s[first], e[last]
    return int((me - ms).sum()), ms, me


# (id(kernels), id(runtime)) -> (kernels, runtime, timeline) while shared_step_timelines() is on
_SHARED: ContextVar[dict[tuple[int, int], Any] | None] = ContextVar("shared_step_timelines",
                                                                   default=None)


@contextmanager
def shared_step_timelines() -> Iterator[None]:
    """Within it, ``step_timeline`` of the same kernel and runtime frames is found once.

    Why: one analysis asks twice — the budget's step finder (analyzers.step_timeline, where a
    trace has no step ranges) and the advice's facts — and on a 1 GB trace each search takes
    ~0.1 s. The frames are the same objects both times and analyzers never change a frame they
    are given, so the second answer is the first. The cache lives only inside the ``with``
    (one analysis) and holds the frames, so their ids cannot be reused meanwhile."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def step_timeline(kt: pd.DataFrame | None, runtime: pd.DataFrame | None = None
                  ) -> StepTimeline | None:
    """The profiled steps of a one-device trace, or None when no kernel sequence repeats."""
    shared = _SHARED.get()
    if shared is None:
        return _find_steps(kt, runtime)
    key = (id(kt), id(runtime))
    if key not in shared:
        shared[key] = (kt, runtime, _find_steps(kt, runtime))
    return shared[key][2]


def _find_steps(kt: pd.DataFrame | None, runtime: pd.DataFrame | None) -> StepTimeline | None:
    if kt is None or len(kt) < 4 or "start_ns" not in kt:
        return None
    devices = kt[Col.DEVICE].dropna().unique() if "device" in kt else []
    if len(devices) > 1 or ("rank" in kt and kt[Col.RANK].dropna().nunique() > 1):
        return None
    rows = _kernel_order(kt)
    if len(rows) < 4:
        return None
    codes = _name_sequence(kt[Col.NAME], rows)
    found = _period(codes)
    if found is None:
        return None
    k, period, starts = found
    start = kt[Col.START_NS].to_numpy(dtype="float64", na_value=np.nan)
    end = start + kt[Col.DUR_NS].to_numpy(dtype="float64", na_value=0)
    ok = ~np.isnan(start)
    all_s, all_e = start[ok].astype("int64"), end[ok].astype("int64")
    k_start, k_end = start[rows].astype("int64"), end[rows].astype("int64")
    prev_end = np.concatenate(([k_start[0]], np.maximum.accumulate(k_end)[:-1]))
    gap_before = np.maximum(k_start - prev_end, 0)
    # The block boundary: where the GPU waits longest between blocks (median over steps).
    best = max(starts, key=lambda s: (float(np.median(gap_before[s + period:s + k * period:period]))
                                      if k > 1 else 0.0, -s))
    issued = _launch_times(kt, runtime, rows)
    windows, busy, waits, hosts = [], [], [], []
    for i in range(k):
        block = slice(best + i * period, best + (i + 1) * period)
        lo, hi = int(k_start[block].min()), int(k_end[block].max())
        b, ms, me = _busy_in(all_s, all_e, lo, hi)
        windows.append((lo, hi))
        busy.append(b)
        wait = 0
        if issued is not None and len(ms) > 1:
            # a gap waits for the CPU when the launch of the activity ending it began inside it
            launch = issued[block]
            ks = k_start[block]
            nxt = np.searchsorted(ks, ms[1:], side="left")
            nxt = np.minimum(nxt, len(ks) - 1)
            late = ~np.isnan(launch[nxt]) & (launch[nxt] >= me[:-1])
            wait = int((ms[1:] - me[:-1])[late].sum())
            span = launch[~np.isnan(launch)]
            hosts.append((int(span.min()), int(span.max())) if len(span) else (lo, lo))
        waits.append(wait)
    host_spans = tuple(hosts) if issued is not None and len(hosts) == k else None
    syncs = _classify_syncs(runtime, host_spans, windows[0][0]) if runtime is not None else ()
    return StepTimeline(method=f"repeating kernel sequence ({period} kernels x {k} steps)",
                        windows=tuple(windows), busy_ns=tuple(busy), launch_wait_ns=tuple(waits),
                        kernels_per_step=period, host_spans=host_spans, syncs=syncs)


def _launch_times(kt: pd.DataFrame, runtime: pd.DataFrame | None, rows: np.ndarray
                  ) -> np.ndarray | None:
    """When the CPU called the launch of each kernel (by correlation id), NaN where unknown."""
    if runtime is None or not len(runtime) or "correlation" not in runtime:
        return None
    corr = runtime["correlation"].to_numpy(dtype="float64", na_value=np.nan)
    rt_start = runtime["start_ns"].to_numpy(dtype="float64", na_value=np.nan)
    has = ~np.isnan(corr) & ~np.isnan(rt_start)
    if not has.any():
        return None
    k_corr = kt[Col.CORRELATION].to_numpy(dtype="float64", na_value=np.nan)[rows]
    row = lookup_rows(corr[has], k_corr, keep="first")
    return np.where(row >= 0, rt_start[has][np.maximum(row, 0)], np.nan)


def _classify_syncs(runtime: pd.DataFrame, host_spans: tuple[tuple[int, int], ...] | None,
                    first_step_ns: int) -> tuple[SyncCall, ...]:
    """Blocking calls from the first step on. In the step: inside a step's host span; between
    steps, a stream/event sync or blocking copy (a step ending in .item()) but not a device
    synchronize (the harness's fence)."""
    codes, values = value_codes(runtime["name"])
    sync = np.append([is_sync(str(v)) for v in values], False).astype(bool)[codes]
    start = runtime["start_ns"].to_numpy(dtype="float64", na_value=np.nan)
    dur = runtime["dur_ns"].to_numpy(dtype="float64", na_value=0)
    out = []
    spans = np.asarray(host_spans or [], dtype="float64").reshape(-1, 2)
    for i in np.flatnonzero(sync & ~np.isnan(start) & (start >= first_step_ns - 1)):
        name = str(values[codes[i]])
        inside = bool(((spans[:, 0] < start[i]) & (start[i] < spans[:, 1])).any())
        before_last = len(spans) and start[i] < spans[-1, 1]
        in_step = inside or (bool(before_last) and not DEVICE_SYNC.match(name))
        out.append(SyncCall(name, int(start[i]), int(dur[i]), in_step))
    return tuple(out)
