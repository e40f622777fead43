"""analyzers.overlap (per-rank comm/compute overlap, stragglers) on a KernelTable built with
real kernel names and hand-checkable intervals; analyzers.scaling (knee, efficiency);
workloads.rank_results (merging per-rank results, a dead rank)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.overlap import distributed_analysis, intersection_ns, merge_intervals
from analyzers.scaling import knee_index, scaling_efficiency
from profilers.parsers.kernel_table import make_kernel_table
from workloads.rank_results import merge_rank_results

GEMM = "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTT"
ALLREDUCE = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)"


def _table(rows: list[tuple[int, str, int, int, int]]) -> pd.DataFrame:
    """rows: (rank, name, stream, start_ns, dur_ns)."""
    return make_kernel_table({
        "name": pd.Categorical([r[1] for r in rows]),
        "kind": pd.Categorical(["kernel"] * len(rows), categories=["kernel", "memcpy", "memset"]),
        "rank": pd.array([r[0] for r in rows], dtype="Int64"),
        "stream": pd.array([r[2] for r in rows], dtype="Int64"),
        "start_ns": pd.array([r[3] for r in rows], dtype="Int64"),
        "dur_ns": pd.array([r[4] for r in rows], dtype="Int64"),
    }, source="torch")


def test_merge_and_intersect_intervals():
    s, e = merge_intervals(np.array([0, 5, 20, 8]), np.array([10, 7, 30, 12]))
    assert s.tolist() == [0, 20] and e.tolist() == [12, 30]
    assert intersection_ns((s, e), merge_intervals(np.array([10, 25]), np.array([22, 40]))) == 9


def test_per_rank_overlap_and_straggler():
    kernels = _table([
        # rank 0: GEMMs 0-100 and 100-200 on stream 7, all-reduce 150-250 on stream 20
        (0, GEMM, 7, 0, 100), (0, GEMM, 7, 100, 100), (0, ALLREDUCE, 20, 150, 100),
        # rank 1: slower GEMM 0-300, then all-reduce 300-320 (nothing overlaps it)
        (1, GEMM, 7, 0, 300), (1, ALLREDUCE, 20, 300, 20),
    ])
    d = distributed_analysis(kernels, None)
    assert d is not None and d.source == "gpu kernels" and d.ranks == [0, 1]
    r0, r1 = (d.per_rank.set_index("rank").loc[i] for i in (0, 1))
    assert (r0.busy_ns, r0.compute_ns, r0.comm_ns, r0.overlap_ns) == (250, 200, 100, 50)
    assert r0.exposed_comm_ns == 50 and r0.overlap_share == 0.5 and r0.comm_share == 0.4
    assert (r1.overlap_ns, r1.exposed_comm_ns) == (0, 20)
    assert d.straggler_rank == 1 and round(d.compute_skew_pct) == 40  # (300-200)/250


def test_single_rank_has_no_distributed_view():
    assert distributed_analysis(_table([(0, GEMM, 7, 0, 10)]), None) is None


def test_knee_and_efficiency():
    assert knee_index([100, 190, 260, 280, 285]) == 2  # saturating throughput
    assert knee_index([100, 200, 300, 400]) is None  # linear: no bend
    assert knee_index([100, None, 300]) is None
    assert scaling_efficiency([1, 2, 4], [100.0, 180.0, None]) == [1.0, 0.9, None]


def test_merge_rank_results_names_the_failed_rank():
    ok = {"status": "ok", "error": None, "metrics": {"latency_ms": {"median": 2.0}},
          "details": {"distributed": {"backend": "nccl", "plan": "tp"}}}
    merged = merge_rank_results([ok, None], 2)
    assert merged["status"] == "failed" and merged["error"].startswith("rank 1:")
    ranks = merged["details"]["distributed"]["ranks"]
    assert [r["status"] for r in ranks] == ["ok", "missing"]
    both = merge_rank_results([ok, {**ok, "metrics": {"latency_ms": {"median": 3.0}}}], 2)
    assert both["status"] == "ok" and both["details"]["distributed"]["slowest_rank"] == 1
    assert both["details"]["distributed"]["latency_spread_pct"] == 50.0
