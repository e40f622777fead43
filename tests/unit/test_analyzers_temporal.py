"""Temporal analysis: busy/idle union, gaps, syncs, host-bound detection."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from analyzers.temporal import temporal_profile
from profilers.parsers.kernel_table import make_kernel_table


@pytest.fixture(scope="module")
def trace(h100_fixtures):
    kineto = pytest.importorskip("profilers.parsers.kineto")
    return kineto.load_kineto(h100_fixtures / "torch_trace.json")


def _union_ns(intervals):
    """Busy time by a plain loop, as an independent check."""
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0)


def test_fixture_busy_idle_and_syncs(trace, h100_fixtures):
    text = (h100_fixtures / "torch_trace.json").read_text()
    events = json.loads(text, parse_float=Decimal)["traceEvents"]  # exact microseconds
    gpu = [(round(e["ts"] * 1000), round(e["ts"] * 1000) + round(e["dur"] * 1000))
           for e in events if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")]
    prof = temporal_profile(trace.kernels, trace.runtime)
    assert prof.busy_ns == _union_ns(gpu)
    assert prof.window_ns == max(e for _, e in gpu) - min(s for s, _ in gpu)
    assert prof.busy_ns + prof.idle_ns == prof.window_ns
    assert prof.kernel_count == 18
    assert prof.memset_ns == sum(round(e["dur"] * 1000) for e in events
                                 if e.get("cat") == "gpu_memset")
    assert prof.memcpy_ns == 0 and prof.memcpy_share == 0.0
    # Kernels under 5 us: 3 gelu elementwise + 3 splitKreduce.
    assert prof.short_kernel_count == 6
    # One cudaDeviceSynchronize inside the activity span (the second comes after the last kernel).
    assert [(s.name, s.count) for s in prof.syncs] == [("cudaDeviceSynchronize", 1)]
    assert prof.sync_ns == 3_803_997
    # The window opens with a 1 s setup gap the host spent before issuing work: host-bound.
    assert prof.host_bound is True
    whole = temporal_profile(trace.kernels, trace.runtime,
                             window=(prof.window_start_ns, prof.window_end_ns + 10**8))
    assert sum(s.count for s in whole.syncs) == 2


def test_fixture_steady_iteration_is_gpu_bound(trace):
    kernels = trace.kernels
    last_iter = kernels[kernels["start_ns"] >= 4463940280838942]
    prof = temporal_profile(last_iter, trace.runtime)
    assert prof.idle_share < 0.01
    assert prof.host_bound is False
    assert prof.gaps.count == 6 and prof.gaps.max_ns < 5_000


def test_overlap_across_streams_counts_once():
    kt = make_kernel_table({
        "name": ["nvjet_a", "triton_poi_b", "triton_poi_c"], "stream": [7, 8, 7],
        "device": [0, 0, 0], "start_ns": [0, 50, 300], "dur_ns": [100, 100, 2],
        "correlation": [1, 2, 3],
    }, source="torch")
    runtime = pd.DataFrame({"name": ["cudaLaunchKernel"] * 3, "start_ns": [-10, -5, 250],
                            "dur_ns": [5, 5, 5], "correlation": [1, 2, 3]})
    prof = temporal_profile(kt, runtime, short_threshold_ns=5)
    assert prof.window_ns == 302
    assert prof.busy_ns == 152  # [0,150) + [300,302)
    assert prof.idle_ns == 150
    assert prof.gaps.count == 1 and prof.gaps.total_ns == 150
    assert prof.short_kernel_count == 1
    assert prof.launch_bound_gap_ns == 150  # kernel 3 was launched at 250, after the gap began
    assert prof.host_bound is True


def test_without_runtime_host_bound_is_unknown():
    kt = make_kernel_table({"name": ["nvjet_a"], "start_ns": [0], "dur_ns": [10],
                            "device": [0]}, source="torch")
    prof = temporal_profile(kt)
    assert prof.host_bound is None and prof.sync_count is None
    assert prof.idle_ns == 0


def test_multi_device_idle_is_per_device():
    kt = make_kernel_table({"name": ["a_gemm", "b_gemm"], "device": [0, 1],
                            "start_ns": [0, 50], "dur_ns": [100, 50]}, source="torch")
    prof = temporal_profile(kt)
    assert [d.busy_ns for d in prof.devices] == [100, 50]
    assert prof.idle_share == pytest.approx(50 / 200)
