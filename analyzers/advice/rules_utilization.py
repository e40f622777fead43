"""Advice rules on how well kernels use the machine: theoretical occupancy (registers and
shared memory per block) and collective communication left exposed beside compute."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analyzers.advice.effect import impact, recoverable_text
from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding
from analyzers.advice.kernel_select import category_mask, time_ns, top_names
from analyzers.distinct import map_distinct
from profilers.parsers.schema import Category, Col

LOW_OCCUPANCY = 0.25
LOW_OCCUPANCY_SHARE = 0.05
NCCL_EXPOSED_SHARE = 0.05

# Per-SM limits by compute capability major.minor: threads, registers, shared memory, blocks.
_SM_LIMITS = {9.0: (2048, 65536, 233472, 32), 8.0: (2048, 65536, 167936, 32),
              8.6: (1536, 65536, 102400, 16), 8.9: (1536, 65536, 102400, 24),
              10.0: (2048, 65536, 233472, 32), 7.0: (2048, 65536, 98304, 32),
              7.5: (1024, 65536, 65536, 16)}


def _occupancy(regs: np.ndarray, smem: np.ndarray, threads: np.ndarray, cc: float | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Theoretical occupancy (fraction of max warps) and its limiter per kernel."""
    max_threads, max_regs, max_smem, max_blocks = _SM_LIMITS.get(cc or 9.0, _SM_LIMITS[9.0])
    warps = np.ceil(threads / 32.0)
    regs_per_warp = np.ceil(regs * 32 / 256.0) * 256
    with np.errstate(divide="ignore", invalid="ignore"):
        by_regs = np.where(regs > 0, np.floor(max_regs / (regs_per_warp * warps)), np.inf)
        by_smem = np.where(smem > 0, np.floor(max_smem / (smem + 1024.0)), np.inf)
        by_threads = np.floor(max_threads / threads)
    limits = np.vstack([by_regs, by_smem, by_threads, np.full(len(regs), float(max_blocks))])
    blocks = limits.min(axis=0)
    occ = blocks * warps / (max_threads / 32.0)
    limiter = np.array(["registers", "shared memory", "threads", "blocks"])[limits.argmin(axis=0)]
    return occ, limiter


def _block_threads(block: Any) -> float:
    return float(np.prod(block)) if isinstance(block, (tuple, list)) and len(block) else np.nan


def _threads_per_block(blocks: pd.Series) -> np.ndarray:
    """Threads per block of each launch, computed once per distinct block shape."""
    try:
        return map_distinct(blocks, _block_threads, np.nan, dtype="float64")
    except TypeError:  # unhashable shapes (lists): one at a time
        return np.array([_block_threads(b) for b in blocks], dtype="float64")


def _distinct_triples(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row -> distinct id, the distinct rows) of equal-length float columns, by hashing
    each column's values to codes and the code tuples to one integer (no sort of rows)."""
    factorized = [pd.factorize(column) for column in columns]
    if math.prod(len(uniques) + 1 for _, uniques in factorized) >= 2**62:  # hostile: sort
        distinct, which = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        return np.asarray(which).reshape(-1), distinct
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for codes, uniques in factorized:
        key = key * (len(uniques) + 1) + codes
    which, _ = pd.factorize(key)
    first = np.unique(which, return_index=True)[1]
    return which, np.stack([c[first] for c in columns], axis=1)


def low_occupancy(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    km = f.kernel_metrics
    theo_col = "sm__maximum_warps_per_active_cycle_pct"
    if km is not None and theo_col in km.columns and len(km) == len(kt):
        occ = pd.to_numeric(km[theo_col], errors="coerce").to_numpy(dtype="float64") / 100.0
        lim_cols = {"registers": "launch__occupancy_limit_registers",
                    "shared memory": "launch__occupancy_limit_shared_mem",
                    "threads": "launch__occupancy_limit_warps", "blocks": "launch__occupancy_limit_blocks"}
        lims = np.vstack([pd.to_numeric(km.get(c, pd.Series([np.nan] * len(km))), errors="coerce")
                          .to_numpy(dtype="float64") for c in lim_cols.values()])
        limiter = np.array(list(lim_cols))[np.nan_to_num(lims, nan=np.inf).argmin(axis=0)]
        how = "ncu theoretical occupancy"
    else:
        regs = kt[Col.REGISTERS].to_numpy(dtype="float64", na_value=np.nan)
        smem = kt[Col.SHARED_MEM].to_numpy(dtype="float64", na_value=np.nan)
        threads = _threads_per_block(kt[Col.BLOCK])
        known = ~np.isnan(regs) & ~np.isnan(threads) & (threads > 0)
        if not known.any():
            return None
        occ = np.full(len(kt), np.nan)
        limiter = np.full(len(kt), "", dtype=object)
        # Once per distinct (registers, shared memory, threads): a few hundred, not a launch each
        which, distinct = _distinct_triples(regs[known], np.nan_to_num(smem[known]),
                                            threads[known])
        o, lim = _occupancy(distinct[:, 0], distinct[:, 1], distinct[:, 2], f.cc)
        occ[known], limiter[known] = o[which], lim.astype(object)[which]
        how = "occupancy computed from registers/thread, shared memory and block size"
    # Tensor-core GEMM and attention kernels run at low occupancy by design (TMA, warp
    # specialization); the rule is about the rest.
    low = (~np.isnan(occ) & (occ <= LOW_OCCUPANCY) & np.isin(limiter, ["registers", "shared memory"])
           & ~category_mask(kt, Category.GEMM, Category.ATTENTION, Category.COMMUNICATION))
    share = time_ns(kt, low) / total
    if share < LOW_OCCUPANCY_SHARE:
        return None
    top = top_names(kt, low, total)
    worst = float(np.nanmin(occ[low]))
    lim_counts = pd.Series(limiter[low]).value_counts()
    main_limiter = str(lim_counts.index[0])
    return Finding(
        rule="low_occupancy",
        finding=f"Kernels at <= {LOW_OCCUPANCY:.0%} theoretical occupancy, limited by "
                f"{main_limiter}, take {share:.0%} of GPU time (lowest {worst:.0%}; {how}).",
        evidence=(Evidence("low-occupancy kernel share of GPU time", share, LOW_OCCUPANCY_SHARE,
                           f.source, "share"),
                  Evidence("lowest theoretical occupancy", worst, LOW_OCCUPANCY, f.source, "share", "<="),
                  Evidence("limiter", main_limiter, "registers or shared memory", f.source, comparison="in")),
        action=("Cut registers per thread (smaller tiles, __launch_bounds__ / maxrregcount, "
                "Triton num_warps / smaller BLOCK)" if main_limiter == "registers" else
                "Use less shared memory per block (smaller tiles, fewer pipeline stages)")
               + " so more blocks fit on an SM; or let torch.compile autotune the kernel (L5).",
        expected_effect="More resident warps hide memory latency: memory-bound kernels get "
                        "closer to the bandwidth roof.",
        confidence="low", impact=impact(f, f.us(time_ns(kt, low) * 0.3), share * 0.3),
        kernels=tuple(n for n, _, _ in top), recoverable_us=f.us(time_ns(kt, low) * 0.3),
        recoverable=recoverable_text(f, f.us(time_ns(kt, low) * 0.3), "30% of the low-occupancy "
                                     "kernels' time (a rough guess: occupancy hides latency, "
                                     "it does not remove work)", time_ns(kt, low) * 0.3))


def _merge(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted, disjoint (starts, ends)."""
    if not len(s):
        return s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > e[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], e[last]


def nccl_not_overlapped(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    comm = category_mask(kt, Category.COMMUNICATION)
    if not comm.any() or kt[Col.START_NS].isna().any():
        return None
    start = kt[Col.START_NS].to_numpy(dtype="int64")
    end = start + kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)
    dev = kt[Col.DEVICE].to_numpy(dtype="int64", na_value=-1) * 100_000 + kt[Col.RANK].to_numpy(
        dtype="int64", na_value=-1)
    comm_ns, exposed = 0, 0
    for d in np.unique(dev[comm]):
        on = dev == d
        cs, ce = start[on & comm], end[on & comm]
        ks, ke = start[on & ~comm], end[on & ~comm]
        comm_ns += int((ce - cs).sum())
        ms, me = _merge(ks, ke)
        covered = 0
        for s, e in zip(cs, ce, strict=True):
            lo = np.searchsorted(me, s, side="right")  # first merged interval ending after s
            hi = np.searchsorted(ms, e, side="left")  # past the last one starting before e
            if hi > lo:
                covered += int((np.minimum(me[lo:hi], e) - np.maximum(ms[lo:hi], s)).sum())
        exposed += int((ce - cs).sum()) - covered
    exposed_share = exposed / total
    if exposed_share < NCCL_EXPOSED_SHARE:
        return None
    overlap = 1 - exposed / comm_ns if comm_ns else None
    top = top_names(kt, comm, total)
    return Finding(
        rule="nccl_not_overlapped",
        finding=f"Collective communication is not hidden behind compute: {exposed_share:.0%} of "
                f"GPU time is NCCL with no kernel running beside it ({f.ranks} rank(s); "
                f"{overlap:.0%} of NCCL time overlapped).",
        evidence=(Evidence("exposed NCCL share of GPU time", exposed_share, NCCL_EXPOSED_SHARE,
                           f.source, "share"),
                  Evidence("NCCL time overlapped with compute", overlap, 0.5, f.source, "share", "<"),
                  Evidence("ranks", f.ranks, None, f.source, comparison="")),
        action="Overlap communication with compute: bucketed async all-reduce (DDP buckets, "
               "FSDP prefetch), async_op=True collectives on a side stream, or tensor-parallel "
               "matmuls that overlap the all-gather / reduce-scatter.",
        expected_effect=f"Up to {exposed_share:.0%} of step time hidden.",
        confidence="medium", impact=impact(f, f.us(exposed), exposed_share),
        kernels=tuple(n for n, _, _ in top), recoverable_us=f.us(exposed),
        recoverable=recoverable_text(f, f.us(exposed), "the NCCL time with no kernel beside "
                                     "it", exposed))


UTILIZATION_RULES = (low_occupancy, nccl_not_overlapped)
