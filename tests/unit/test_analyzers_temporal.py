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


def test_multi_device_reports_union_and_per_device():
    kt = make_kernel_table({"name": ["a_gemm", "b_gemm"], "device": [0, 1],
                            "start_ns": [0, 50], "dur_ns": [100, 50]}, source="torch")
    prof = temporal_profile(kt)
    assert [d.busy_ns for d in prof.devices] == [100, 50]
    assert prof.device_busy_ns == 150 and prof.device_idle_ns == 50
    assert prof.device_idle_share == pytest.approx(50 / 200)
    # The union: some device busy over [0, 100) of a 100 ns window.
    assert prof.busy_ns == 100 and prof.idle_ns == 0 and prof.idle_share == 0.0


def test_two_gpus_busy_never_exceeds_the_window():
    """Two devices busy at the same time: busy_ns was their sum and exceeded the window."""
    kt = make_kernel_table({"name": ["a_gemm", "b_gemm", "c_gemm"], "device": [0, 1, 1],
                            "start_ns": [0, 10, 60], "dur_ns": [80, 40, 40]}, source="torch")
    prof = temporal_profile(kt)
    assert prof.window_ns == 100
    assert prof.busy_ns == _union_ns([(0, 80), (10, 50), (60, 100)]) == 100
    assert prof.busy_ns <= prof.window_ns and prof.idle_ns == 0
    assert prof.device_busy_ns == 160 and prof.device_idle_share == pytest.approx(40 / 200)


def test_epoch_timestamps_stay_exact(tmp_path):
    """Older Kineto traces give ts in whole microseconds since the epoch (~1.7e15 us, exact
    in float64) — ~1.7e18 ns, which float64 holds only to 256 ns: busy and window went off
    when temporal turned the exact integer ns back into floats."""
    kineto = pytest.importorskip("profilers.parsers.kineto")
    base = 1_735_632_360_123_457  # us since the epoch
    events, gpu = [], []
    for i in range(400):
        ts = base + i * 37 + (i % 3)
        dur = Decimal(3) + Decimal(i % 5 * 7 + 1) / 1000
        events.append({"ph": "X", "cat": "kernel", "name": f"k{i % 3}", "ts": ts,
                       "dur": float(dur), "args": {"device": i % 2, "stream": 7}})
        gpu.append((i % 2, ts * 1000, ts * 1000 + int(dur * 1000)))
    path = tmp_path / "epoch.json"
    path.write_text(json.dumps({"traceEvents": events}))
    trace = kineto.load_kineto(path)
    assert sorted(trace.kernels["start_ns"].tolist()) == sorted(s for _, s, _ in gpu)
    prof = temporal_profile(trace.kernels)
    assert prof.window_start_ns == min(s for _, s, _ in gpu)
    assert prof.window_ns == max(e for _, _, e in gpu) - min(s for _, s, _ in gpu)
    assert prof.busy_ns == _union_ns([(s, e) for _, s, e in gpu])
    for d in prof.devices:
        assert d.busy_ns == _union_ns([(s, e) for dev, s, e in gpu if dev == d.device])
    for dev in (0, 1):  # each device's gaps: its span minus its busy union
        mine = [(s, e) for d, s, e in gpu if d == dev]
        span = max(e for _, e in mine) - min(s for s, _ in mine)
        assert span - _union_ns(mine) > 0
    assert prof.gaps.total_ns == sum(
        max(e for d, _, e in gpu if d == dev) - min(s for d, s, _ in gpu if d == dev)
        - _union_ns([(s, e) for d, s, e in gpu if d == dev]) for dev in (0, 1))


def test_sync_share_of_two_processes_stays_within_the_window():
    """Two processes each blocked in syncs 60% of the window: their summed call time is 120%
    of it; the blocked share (union) and each process's share stay <= 1 (issue 15 point 8)."""
    kt = make_kernel_table({"name": ["a_gemm"], "device": [0], "start_ns": [0],
                            "dur_ns": [1000]}, source="nsys")
    runtime = pd.DataFrame({
        "name": ["cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaStreamSynchronize",
                 "cudaLaunchKernel"],
        "start_ns": pd.array([0, 300, 400, 0], dtype="Int64"),
        "dur_ns": pd.array([300, 300, 600, 5], dtype="Int64"),
        "correlation": pd.array([1, 2, 3, 4], dtype="Int64"),
        "pid": [11, 11, 22, 11]})
    prof = temporal_profile(kt, runtime)
    assert prof.sync_ns == 1200 and prof.sync_ns / prof.window_ns > 1  # the old "120%"
    assert prof.sync_blocked_ns == 1000 and prof.sync_share == 1.0
    assert [(p.process, p.blocked_ns, p.share) for p in prof.sync_processes] == [
        (11, 600, 0.6), (22, 600, 0.6)]
    assert all(0 <= p.share <= 1 for p in prof.sync_processes)
    assert {s.name: s.blocked_ns for s in prof.syncs} == {
        "cudaStreamSynchronize": 900, "cudaDeviceSynchronize": 300}


ROCM_RUNTIME = ["hipLaunchKernel", "hipExtModuleLaunchKernel", "hipModuleLaunchKernel",
                "hipDeviceSynchronize", "hipStreamSynchronize", "hipMemcpyWithStream",
                "hipMemsetAsync", "hipGetDevicePropertiesR0600", "cudaLaunchKernel_v7000",
                "cudaStreamSynchronize_ptsz"]


def test_rocm_and_versioned_api_names_count():
    kt = make_kernel_table({"name": ["Cijk_Alik_Bljk"] * 3, "device": [0] * 3,
                            "start_ns": [0, 100, 200], "dur_ns": [50] * 3,
                            "correlation": [1, 2, 3]}, source="torch")
    n = len(ROCM_RUNTIME)
    runtime = pd.DataFrame({"name": ROCM_RUNTIME, "start_ns": pd.array(range(0, 10 * n, 10),
                            dtype="Int64"), "dur_ns": pd.array([5] * n, dtype="Int64"),
                            "correlation": pd.array(range(1, n + 1), dtype="Int64")})
    prof = temporal_profile(kt, runtime)
    # hipLaunchKernel, hipExtModuleLaunchKernel, hipModuleLaunchKernel, cudaLaunchKernel_v7000
    assert prof.launch_count == 4
    # hipDeviceSynchronize, hipStreamSynchronize, hipMemcpyWithStream (a blocking copy),
    # cudaStreamSynchronize_ptsz
    assert prof.sync_count == 4
