"""Our exact GPU activity put through what HTA does to it, so a difference can be explained by
showing it, not by guessing (pure).

HTA (holistictraceanalysis 0.5) reads a Kineto trace in two ways that change its figures:
- it rounds every event inward to whole microseconds: start up, end down (hta/common/
  trace_parser.py: ``math.ceil(ts)``, ``math.floor(end)``), so an event loses up to 2 us and a
  sub-microsecond kernel counts 0 or -1 us;
- where the trace holds two or more ``ProfilerStep#N`` annotations it keeps only the GPU
  activities launched (by a runtime call sharing their correlation id) before the last
  ProfilerStep starts (``Trace._filter_irrelevant_gpu_kernels``): the last step, and any
  activity without a matching launch call, is dropped.

``replay_hta`` computes, from our integer-nanosecond table, the figures HTA would report under
each of these, per variant: every activity rounded inward ("rounding"), and additionally only
the activities HTA keeps ("last step dropped", where the trace has steps). A comparison row
whose HTA figure equals a replayed one is explained by exactly that; see analyzers.hta_compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profilers.parsers.schema import Col

# The runtime calls HTA's launch statistics count (hta/analyzers/cuda_kernel_analysis.py).
HTA_LAUNCH_APIS = frozenset({"cudaLaunchKernel", "cudaLaunchKernelExC", "cudaMemcpyAsync",
                             "cudaMemsetAsync"})
STEP_RE = re.compile(r"ProfilerStep\s*#\s*(\d+)")

ROUNDING = "rounding"
LAST_STEP = "last step dropped"


@dataclass(frozen=True)
class HtaReplay:
    """HTA's figures, recomputed from our table under one variant (all in whole us)."""

    variant: str  # ROUNDING | LAST_STEP
    kept: int  # GPU activities HTA keeps
    total: int  # GPU activities we have
    sum_us: int  # sum over kept of floor(end) - ceil(start)
    busy_us: int  # union of the rounded intervals, summed over ranks
    window_us: int  # last rounded end - first rounded start, summed over ranks
    launches: int | None  # runtime calls HTA's launch statistics count; None: no runtime frame
    per_name_us: pd.Series = field(repr=False)  # kernel name -> sum_us
    busy_by_rank: tuple[int, ...] = ()
    window_by_rank: tuple[int, ...] = ()

    @property
    def idle_us(self) -> int:
        return self.window_us - self.busy_us


def _ceil_us(ns: np.ndarray) -> np.ndarray:
    return -((-ns) // 1000)


def _union(start: np.ndarray, end: np.ndarray) -> int:
    """Length of the union of [start, end) intervals; empty or negative ones add nothing."""
    if not len(start):
        return 0
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order]
    run_end = np.maximum.accumulate(e)
    before = np.concatenate(([np.iinfo(np.int64).min], run_end[:-1]))
    return int(np.maximum(0, e - np.maximum(s, before)).sum())


def _rank_keys(frame: pd.DataFrame) -> np.ndarray:
    if "rank" not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    return pd.to_numeric(frame["rank"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)


def _variant(variant: str, kernels: pd.DataFrame, keep: np.ndarray, runtime_kept: pd.DataFrame | None,
             ranks: np.ndarray) -> HtaReplay:
    start = kernels[Col.START_NS].to_numpy(dtype=np.int64, na_value=0)
    end = start + kernels[Col.DUR_NS].to_numpy(dtype=np.int64, na_value=0)
    a, b = _ceil_us(start), end // 1000
    a, b, r = a[keep], b[keep], ranks[keep]
    busy: list[int] = []
    window: list[int] = []
    for rank in np.unique(r):
        on = r == rank
        busy.append(_union(a[on], b[on]))
        window.append(int(b[on].max() - a[on].min()))
    launches = None
    if runtime_kept is not None:
        launches = int(runtime_kept["name"].astype(str).isin(HTA_LAUNCH_APIS).sum())
    names = kernels[Col.NAME].astype(str).to_numpy()[keep]
    per_name = pd.Series(b - a, index=names).groupby(level=0, sort=False).sum()
    return HtaReplay(variant, int(keep.sum()), len(kernels), int((b - a).sum()), sum(busy),
                     sum(window), launches, per_name, tuple(busy), tuple(window))


def replay_hta(kernels: pd.DataFrame, runtime: pd.DataFrame | None,
               last_step_start_ns: dict[int, int] | None) -> list[HtaReplay]:
    """HTA's figures under inward rounding alone, and (where ``last_step_start_ns`` gives the
    start of the last ProfilerStep per rank, the trace having two or more steps) with only the
    activities HTA keeps. Rows with a missing start or duration are left out."""
    ok = kernels[Col.START_NS].notna().to_numpy() & kernels[Col.DUR_NS].notna().to_numpy()
    table = kernels.loc[ok]
    ranks = _rank_keys(table)
    if not len(table):
        return []
    rt = runtime if runtime is not None and len(runtime) else None
    out = [_variant(ROUNDING, table, np.ones(len(table), dtype=bool), rt, ranks)]
    if not last_step_start_ns or rt is None or "correlation" not in rt.columns:
        return out
    # HTA compares the launch call's rounded-up start with the last step's, per rank.
    rt_ranks = _rank_keys(rt)
    rt_start = _ceil_us(rt["start_ns"].to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).max))
    single = next(iter(last_step_start_ns.values())) if len(last_step_start_ns) == 1 else None
    limit = np.array([single if single is not None else last_step_start_ns.get(int(k), -1)
                      for k in rt_ranks], dtype=np.int64)
    before = rt_start < _ceil_us(limit)
    launched = rt.loc[before]
    corr = launched["correlation"].dropna().to_numpy(dtype=np.int64)
    k_corr = table["correlation"].to_numpy(dtype=np.int64, na_value=-1)
    keep = np.isin(k_corr, corr) & (k_corr >= 0)
    if keep.any():
        out.append(_variant(LAST_STEP, table, keep, launched, ranks))
    return out


def last_step_starts(step_starts_ns: dict[int, dict[int, int]] | None) -> dict[int, int] | None:
    """Per rank, the start (ns) of its last ProfilerStep, where HTA's filter applies: two or
    more distinct step names in the trace (over all ranks, as HTA's symbol table counts them).
    ``step_starts_ns``: rank -> {step number -> start ns}."""
    if not step_starts_ns or len({n for steps in step_starts_ns.values() for n in steps}) < 2:
        return None
    return {rank: max(steps.values()) for rank, steps in step_starts_ns.items() if steps}
