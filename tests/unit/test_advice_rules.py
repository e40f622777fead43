"""Every advice rule on a case where it fires and one where it does not: the real H100
fixtures, the real H200 sessions (tests/data/h200), captured kernel tables (advice_cases) and
run records in the protocol's schema. No test depends on another's order or state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyzers.advice import advise, rule_ids
from analyzers.advice.rules_record import gini
from tests.conftest import H200_RUNS
from tests.unit.advice_cases import (
    FP32_MLP,
    H100,
    MATH_ATTENTION,
    MOE_LOOP,
    TRITON_HEAVY,
    fixture_analysis,
    record,
    session_analysis,
    table_analysis,
)

# A real HF-transformers Mixtral-architecture generate() (64 experts, top-6) traced on an H100.
MOE_TRACE = Path(os.environ.get("AIPERF_MOE_TRACE") or Path(__file__).resolve().parents[1] / "data"
                 / "h100" / "hf_moe_generate_small.json.gz")
NCCL = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)"
GEMM = "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT"


def rules_of(analysis, rec=None) -> dict:
    return {f.rule: f for f in advise(analysis, rec)}


@pytest.fixture(scope="module")
def torch_fx(h100_fixtures):
    return fixture_analysis(h100_fixtures, "torch_trace.json")


@pytest.fixture(scope="module")
def ncu_fx(h100_fixtures):
    return fixture_analysis(h100_fixtures, "ncu_raw.csv")


def test_fixture_torch_trace_fires_fp8_not_idle_between_steps(torch_fx) -> None:
    """The window holds a 1.06 s gap before the first SDPA kernel (cuDNN's first call): the old
    rule said "GPU idle 100% ... up to 100% of the step's wall time recovered". The steps are
    found in the trace (6 kernels x 3); the median step is busy, so no launch-bound finding."""
    found = rules_of(torch_fx)
    assert torch_fx.temporal.idle_share > 0.99  # the window's idle share, as before
    assert set(found) == {"fp8_eligible_gemms"}
    fp8 = found["fp8_eligible_gemms"]
    share = next(e for e in fp8.evidence if "GEMM share" in e.metric).value
    assert share == pytest.approx(0.8416, abs=1e-3)  # the nvjet GEMMs' share (gemm category)
    assert fp8.kernels[0].startswith("nvjet_sm90_tst_320x128")
    # an artifact from elsewhere: this device's spec ceilings, no workbench layer to name
    assert "FP8 1,979 vs bf16 989 TFLOP/s, spec ceilings of the H100 SXM" in fp8.expected_effect
    assert fp8.layer is None and "layer" not in fp8.action
    # per step: the median step's GPU window (1.68 ms), not the 1.08 s window
    assert fp8.recoverable_us == pytest.approx(0.5 * (3 * 1_396_000 + 3 * 7_100 + 3 * 7_800) / 3
                                               / 1e3, rel=0.01)
    # an artifact without timed repeats: the budget's step, the repeats of the kernel sequence
    assert "of the 1.68 ms step, the speed-of-light budget's step" in fp8.recoverable


def test_fixture_ncu_fires_elementwise_chain_not_launch_bound(ncu_fx) -> None:
    found = rules_of(ncu_fx)
    assert "elementwise_chains" in found and "launch_bound" not in found  # no timeline in ncu
    chain = found["elementwise_chains"]
    share = chain.evidence[0].value
    # the three back-to-back elementwise kernels after the GEMM: 175.3 + 174.6 + 51.6 us
    assert share == pytest.approx((175264 + 174624 + 51648) / 780704, rel=1e-6)
    assert "low_occupancy" not in found  # theoretical occupancy >= 62.5 % there
    assert "fp8_eligible_gemms" not in found  # GEMMs are 23 % < 30 %


def test_fp32_gemm_fires_on_simt_sgemm_not_on_bf16(torch_fx) -> None:
    found = rules_of(table_analysis(FP32_MLP), record())
    f = found["fp32_gemm_off_tensor_cores"]
    assert f.layer == "L1" and f.confidence == "high"
    assert "FP32 67 vs TF32 495 TFLOP/s, spec ceilings of the H100 SXM" in f.expected_effect
    assert f.evidence[0].value == pytest.approx(1_700_000 / 1_740_000)
    assert "fp8_eligible_gemms" not in found  # first TF32/bf16
    assert "fp32_gemm_off_tensor_cores" not in rules_of(torch_fx)


def test_fp32_gemm_from_dtype_without_l1() -> None:
    rows = [{"name": "nvjet_sm90_sss_128x128_64x4_1x2_h_bz_NNT", "dur_ns": 500_000}]
    fp32 = record(spec={"layers": ["L0"], "params": {"dtype": "float32"}})
    assert "fp32_gemm_off_tensor_cores" in rules_of(table_analysis(rows), fp32)
    tf32 = record(spec={"layers": ["L0", "L1"], "params": {"dtype": "float32"}})
    assert "fp32_gemm_off_tensor_cores" not in rules_of(table_analysis(rows), tf32)
    assert rules_of(table_analysis(rows), fp32)["fp32_gemm_off_tensor_cores"].layer == "L1"


def test_fp8_not_on_a100_nor_when_fp8_runs(torch_fx) -> None:
    a100 = record(env={"device_name": "NVIDIA A100-SXM4-80GB", "device_kind": "cuda", "cc": [8, 0]})
    assert "fp8_eligible_gemms" not in rules_of(torch_fx, a100)
    rows = [{"name": "nvjet_sm90_qqtst_128x256_128x6_2x1_2cta_v_bz_Avec32UE8M0_TNT_e4m3", "dur_ns": 900_000},
            {"name": "nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT", "dur_ns": 900_000}]
    assert "fp8_eligible_gemms" not in rules_of(table_analysis(rows))


def test_elementwise_chain_not_on_gemm_dominated(torch_fx) -> None:
    assert "elementwise_chains" not in rules_of(torch_fx)


def test_attention_math_path_fires_flash_does_not(torch_fx) -> None:
    f = rules_of(table_analysis(MATH_ATTENTION), record())["attention_not_flash"]
    assert f.layer == "L3"
    moe = rules_of(table_analysis(MATH_ATTENTION), record(spec={"workload": "moe"}))
    assert moe["attention_not_flash"].layer == "L3"  # L3 applies to the MoE decoder too
    micro = rules_of(table_analysis(MATH_ATTENTION), record(spec={"workload": "gemm"}))
    assert micro["attention_not_flash"].layer is None  # no attention layer for a GEMM micro
    assert f.evidence[0].value == pytest.approx((210 + 150 + 190) / 1010, rel=1e-6)
    assert "attention_not_flash" not in rules_of(torch_fx)  # cuDNN flash SDPA there
    # a softmax alone (sampling / a router) is no attention
    assert "attention_not_flash" not in rules_of(table_analysis(TRITON_HEAVY))


def test_moe_dispatch_names_kernels_and_share() -> None:
    f = rules_of(table_analysis(MOE_LOOP * 4))["moe_dispatch"]
    assert f.confidence == "high" and f.layer is None  # an artifact: no workbench layer
    moe = rules_of(table_analysis(MOE_LOOP * 4), record(spec={"workload": "moe"}))
    assert moe["moe_dispatch"].layer == "L6-moe-grouped"
    grouped = record(spec={"workload": "moe", "layers": ["L0", "L6-moe-grouped"]})
    assert rules_of(table_analysis(MOE_LOOP * 4), grouped)["moe_dispatch"].layer is None
    assert f.evidence[0].value == pytest.approx(24 / 31)  # all but the expert GEMM
    assert "gatherTopK" in f.finding and "indexFuncLargeIndex" in f.finding
    assert any("indexFuncLargeIndex" in k for k in f.kernels)  # index_add_ counted via its op


def test_moe_dispatch_not_for_a_dense_embedding_lookup(torch_fx) -> None:
    rows = [{"name": "void at::native::(anonymous namespace)::indexSelectLargeIndex<c10::BFloat16, long, unsigned int, 2, 2, -2, true>(...)",
             "dur_ns": 30_000, "op_name": "aten::embedding"},
            {"name": "nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT", "dur_ns": 100_000, "op_name": "aten::mm"}]
    assert "moe_dispatch" not in rules_of(table_analysis(rows))
    assert "moe_dispatch" not in rules_of(torch_fx)


def test_low_occupancy_from_registers(torch_fx) -> None:
    f = rules_of(table_analysis(TRITON_HEAVY))["low_occupancy"]
    assert "registers" in f.finding
    # 255 regs x 256 threads: one block of 8 warps per SM = 8/64 = 12.5 %
    assert f.evidence[1].value == pytest.approx(0.125)
    assert not any("nvjet" in k for k in f.kernels)  # tensor-core GEMMs are left alone
    assert "low_occupancy" not in rules_of(torch_fx)


def test_nccl_exposed_vs_overlapped() -> None:
    serial = [{"name": GEMM, "dur_ns": 400_000, "start_ns": 0, "stream": 7},
              {"name": NCCL, "dur_ns": 300_000, "start_ns": 410_000, "stream": 20}]
    f = rules_of(table_analysis(serial))["nccl_not_overlapped"]
    assert f.evidence[0].value == pytest.approx(300 / 700)
    overlapped = [{"name": GEMM, "dur_ns": 400_000, "start_ns": 0, "stream": 7},
                  {"name": NCCL, "dur_ns": 300_000, "start_ns": 50_000, "stream": 20},
                  {"name": GEMM, "dur_ns": 400_000, "start_ns": 400_000, "stream": 7}]
    assert "nccl_not_overlapped" not in rules_of(table_analysis(overlapped))


def test_launch_bound_not_on_a_busy_gpu() -> None:
    busy = [{"name": GEMM, "dur_ns": 200_000} for _ in range(20)]  # 1 us gaps
    assert "launch_bound" not in rules_of(table_analysis(busy))


def test_host_copies_pageable_fire_and_none_without() -> None:
    rows = [{"name": GEMM, "dur_ns": 400_000},
            {"name": "Memcpy HtoD (Pageable -> Device)", "dur_ns": 60_000, "kind": "memcpy"}]
    f = rules_of(table_analysis(rows), record())["host_device_copies"]
    assert f.confidence == "high" and f.layer == "L2"
    assert f.evidence[0].value == pytest.approx(60 / 460)
    rows[1] = {"name": "Memcpy DtoD (Device -> Device)", "dur_ns": 60_000, "kind": "memcpy"}
    assert "host_device_copies" not in rules_of(table_analysis(rows))


def test_syncs_in_step_fire_on_stream_syncs(torch_fx) -> None:
    rows = [{"name": GEMM, "dur_ns": 100_000, "correlation": i} for i in range(6)]
    runtime = [{"name": "cudaStreamSynchronize", "start_ns": 1_000_000 + 101_000 * i + 90_000,
                "dur_ns": 12_000, "correlation": 1000 + i} for i in range(5)]
    f = rules_of(table_analysis(rows, runtime=runtime))["syncs_in_step"]
    assert f.evidence[0].value == 5 and "cudaStreamSynchronize x5" in f.finding
    assert "syncs_in_step" not in rules_of(torch_fx)  # cudaDeviceSynchronize between steps


def test_harness_syncs_between_steps_are_not_in_the_step(h200_home) -> None:
    """The eager 8B run's first finding was the harness's own cudaDeviceSynchronize x3 between
    the profiled steps, "host time blocked in them = 0.0%"."""
    analysis, rec = session_analysis(h200_home, H200_RUNS["L0"])
    assert [s.name for s in analysis.temporal.syncs] == ["cudaDeviceSynchronize"]
    assert "syncs_in_step" not in {f.rule for f in analysis.advice}
    from analyzers.advice.steps import step_timeline

    steps = step_timeline(analysis.kernels, analysis.runtime)
    assert steps is not None and steps.steps == 3 and steps.kernels_per_step == 1738
    assert len(steps.syncs) == 4 and not steps.in_step_syncs()
    # the windows are the aiperf:step GPU ranges the workload annotated (87.95, 87.03, 92.27 ms)
    assert [round(w / 1e6, 2) for w in steps.wall_ns] == [87.95, 87.03, 92.27]


def test_syncs_inside_a_real_moe_generate_step() -> None:
    from workbench.api.pipeline.analysis import analyze_paths

    analysis = analyze_paths([MOE_TRACE])[1]
    f = rules_of(analysis)["syncs_in_step"]
    assert "cudaStreamSynchronize x20" in f.finding


def test_decode_below_roof() -> None:
    lat = {"median": 80.0, "n": 5}
    slow = record(metrics={"step": "decode", "achieved_gb_s": 180.0, "latency_ms": lat,
                           "bytes_per_step": 14.4e9})  # HF eager 8B: ~12 tok/s
    f = rules_of(None, slow)["decode_below_bandwidth_roof"]
    assert f.evidence[1].value == pytest.approx(180 / 3350)
    assert f.layer == "L4"  # dense L0: graphs first, then the rest, each named
    for name in ("L4", "L5", "L2", "L5-gemv", "L5-fp8"):
        assert f"(layer {name})" in f.action
    # 80 ms step less 14.4 GB at 3.35 TB/s (the H100 SXM spec roof)
    assert f.recoverable_us == pytest.approx((80e6 - 14.4e9 / 3.35e12 * 1e9) / 1e3, rel=1e-6)
    fast = record(metrics={"step": "decode", "achieved_gb_s": 2900.0, "latency_ms": lat})
    assert "decode_below_bandwidth_roof" not in rules_of(None, fast)
    prefill = record(metrics={"step": "prefill", "achieved_gb_s": 180.0, "latency_ms": lat})
    assert "decode_below_bandwidth_roof" not in rules_of(None, prefill)
    # under ncu the step's latency is a replay, not a timing: its "0.6 GB/s" is no finding
    ncu = record(spec={"profiler": "ncu"}, metrics={"step": "decode", "achieved_gb_s": 0.6,
                                                     "latency_ms": {"median": 25277.0, "n": 1}})
    found = rules_of(None, ncu)
    assert "decode_below_bandwidth_roof" not in found and "noisy_measurement" not in found


def test_throttling() -> None:
    hot = record(telemetry={"available": True, "throttle_reasons": ["sw_thermal", "hw_slowdown"],
                            "sm_mhz_min": 1410, "sm_mhz_max": 1980, "temp_c_max": 87})
    f = rules_of(None, hot)["throttling"]
    assert "thermal" in f.finding and "1410-1980 MHz" in f.evidence[1].value
    cool = record(telemetry={"available": True, "throttle_reasons": [], "sm_mhz_min": 1980})
    assert "throttling" not in rules_of(None, cool)
    display = record(telemetry={"available": True, "throttle_reasons": ["display_clocks"]})
    assert "throttling" not in rules_of(None, display)


def test_parity_failure_ranks_first(torch_fx) -> None:
    bad = record(parity={"ok": False, "max_rel_err": 0.31, "top1_agreement": 0.62,
                         "tolerance": {"max_rel_err": 0.02, "min_top1_agreement": 0.99}})
    found = advise(torch_fx, bad)
    assert found[0].rule == "parity_failure"
    assert found[0].evidence[0].value == 0.31 and found[0].evidence[0].threshold == 0.02
    assert "parity_failure" not in rules_of(None, record(parity={"ok": True, "max_rel_err": 0.0}))


def test_noisy_measurement() -> None:
    noisy = record(metrics={"latency_ms": {"mean": 10.0, "stdev": 1.2, "n": 5, "median": 9.8,
                                           "p10": 8.9, "p90": 11.9}})
    f = rules_of(None, noisy)["noisy_measurement"]
    assert f.evidence[0].value == pytest.approx(0.12) and f.confidence == "high"
    steady = record(metrics={"latency_ms": {"mean": 10.0, "stdev": 0.1, "n": 20}})
    assert "noisy_measurement" not in rules_of(None, steady)


def test_expert_imbalance_router_health_and_raw_counts() -> None:
    skewed = record(details={"router": {"available": True, "gini": 0.31, "gini_max": 0.42,
                                                "load_cv": 0.6, "load_cv_max": 0.9,
                                                "tokens_per_expert_min": 3, "tokens_per_expert_max": 210}})
    f = rules_of(None, skewed)["expert_imbalance"]
    assert f.evidence[0].value == 0.42  # the worst layer
    even = record(details={"router": {"available": True, "gini": 0.05, "gini_max": 0.08,
                                      "load_cv": 0.04, "load_cv_max": 0.07}})
    assert "expert_imbalance" not in rules_of(None, even)
    raw = record(details={"router": {"tokens_per_expert": [100, 0, 0, 0]}})
    assert rules_of(None, raw)["expert_imbalance"].evidence[0].value == pytest.approx(0.75)


def test_gini_hand_computed() -> None:
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([1, 0, 0, 0]) == pytest.approx(0.75)  # (E-1)/E
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([]) is None


def test_rule_errors_are_notes_not_crashes() -> None:
    from analyzers.advice.engine import run_rules
    from analyzers.advice.facts import Facts

    def broken(facts):
        raise KeyError("x")

    notes: list[str] = []
    assert run_rules(Facts(source="s"), rules=(broken,), notes=notes) == []
    assert "broken" in notes[0]


@pytest.mark.skipif(not MOE_TRACE.is_file(), reason="HF MoE trace not captured yet")
def test_hf_moe_generate_top_advice_is_moe_dispatch() -> None:
    from analyzers.advice.kernel_select import short_name as _short
    from workbench.api.pipeline.analysis import analyze_paths

    analysis = analyze_paths([MOE_TRACE])[1]
    rules = [f.rule for f in analysis.advice]
    top = analysis.advice[0]
    assert top.rule == "moe_dispatch", rules
    share = top.evidence[0].value
    assert top.evidence[0].unit == "share" and 0.10 <= share <= 1.0
    assert f"{share:.0%} of GPU time" in top.finding
    assert "vectorized_gather_kernel" in top.finding  # the dispatch kernels, named
    assert top.kernels and all(_short(k) in top.finding for k in top.kernels)
    # the per-expert loop syncs: graphs (the launch-bound fix) come after removing them
    assert rules.index("syncs_in_step") < rules.index("launch_bound")
    launch = analysis.advice[rules.index("launch_bound")]
    assert launch.action.startswith("First remove the host synchronizations")
    # no repeating steps in a per-token expert loop: the whole window, and it says so
    assert "of the profiled window" in launch.finding
    assert "over the profiled trace" in top.recoverable


# One real case per rule where it fires; each test builds its own (no shared state, no order).
def _h200(name: str):  # type: ignore[no-untyped-def]
    return lambda home: session_analysis(home, H200_RUNS[name])


def _trace(path: Path):  # type: ignore[no-untyped-def]
    def load(home):  # type: ignore[no-untyped-def]
        from workbench.api.pipeline.analysis import analyze_paths

        return analyze_paths([path])[1], None
    return load


def _table(rows, rec=None, **kw):  # type: ignore[no-untyped-def]
    return lambda home: (table_analysis(rows, **kw), rec)


FIRES_ON = {
    "parity_failure": lambda home: (None, record(parity={"ok": False, "max_rel_err": 0.3})),
    "throttling": lambda home: (None, record(telemetry={"available": True,
                                                        "throttle_reasons": ["hw_slowdown"]})),
    "noisy_measurement": lambda home: (None, record(metrics={"latency_ms": {
        "mean": 10.0, "stdev": 1.2, "n": 5}})),
    "expert_imbalance": lambda home: (None, record(details={"router": {
        "tokens_per_expert": [100, 0, 0, 0]}})),
    "launch_bound": _h200("L0"),
    "syncs_in_step": _trace(MOE_TRACE),
    "host_device_copies": _table([{"name": GEMM, "dur_ns": 400_000},
                                  {"name": "Memcpy HtoD (Pageable -> Device)", "dur_ns": 60_000,
                                   "kind": "memcpy"}]),
    "decode_below_bandwidth_roof": _h200("L0"),
    "moe_dispatch": _trace(MOE_TRACE),
    "fp32_gemm_off_tensor_cores": _table(FP32_MLP),
    "attention_not_flash": _h200("L0"),
    "elementwise_chains": _h200("L0-L4"),
    "fp8_eligible_gemms": _h200("best"),
    "kernel_far_below_roof": _h200("best"),
    "low_occupancy": _table(TRITON_HEAVY),
    "nccl_not_overlapped": _table([{"name": GEMM, "dur_ns": 400_000, "start_ns": 0, "stream": 7},
                                   {"name": NCCL, "dur_ns": 300_000, "start_ns": 410_000,
                                    "stream": 20}]),
}


def test_every_rule_has_a_case() -> None:
    assert set(FIRES_ON) == set(rule_ids()) and len(FIRES_ON) >= 16
    assert H100  # the captured cases are H100-shaped


@pytest.mark.parametrize("rule", sorted(FIRES_ON))
def test_every_rule_fires_on_its_case(rule: str, h200_home: Path) -> None:
    analysis, rec = FIRES_ON[rule](h200_home)
    found = advise(analysis, rec)
    assert rule in {f.rule for f in found}


def test_steps_found_in_bounded_time_on_a_long_trace() -> None:
    """The step finder checks block starts in O(kernels x steps): 3 steps of 40k kernels with
    a 20% prefix (no quadratic scan), and a sequence that never repeats gives no steps."""
    import time

    import numpy as np

    from analyzers.advice.steps import step_timeline
    from profilers.parsers.kernel_table import make_kernel_table

    rng = np.random.default_rng(0)
    # a decode step: the embedding and the LM head once, 40k kernels of a few hundred kinds
    step = (["embedding"] + [f"k{int(i)}" for i in rng.integers(0, 500, 39_998)]
            + ["lm_head"])
    names = [f"warm{i}" for i in range(24_000)] + step * 3
    start = np.arange(len(names), dtype="int64") * 2_000
    kt = make_kernel_table({"name": names, "dur_ns": [1_000] * len(names), "start_ns": start,
                            "stream": [7] * len(names), "device": [0] * len(names)},
                           source="torch")
    t0 = time.process_time()
    found = step_timeline(kt)
    assert time.process_time() - t0 < 20  # seconds of CPU, generous for a loaded 2-core box
    assert found is not None and found.steps == 3 and found.kernels_per_step == 40_000
    one = make_kernel_table({"name": [f"k{i}" for i in range(5_000)], "dur_ns": [1_000] * 5_000,
                             "start_ns": np.arange(5_000) * 2_000}, source="torch")
    assert step_timeline(one) is None
