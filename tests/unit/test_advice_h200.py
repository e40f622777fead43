"""Advice on the real H200 ladder (dense llama-3.1-8b under the torch profiler: L0, L0-L4, the
best bf16 stack, FP8): which rules fire on each rung, with no false alarm, the layers named as
`aiperf-workbench workloads` prints them (never one the run has), this device's calibrated
ceilings, and the microseconds per step each fix can recover."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from analyzers.layer_choice import layer_applies
from tests.conftest import H200_RUNS
from tests.unit.advice_cases import session_analysis
from workloads.catalog import LAYERS

# rung -> the rules that fire, rightly (see benchmarks/RESULTS.md, "Advice on the H200 ladder")
EXPECTED = {
    "L0": {"launch_bound", "decode_below_bandwidth_roof", "fp8_eligible_gemms",
           "elementwise_chains", "attention_not_flash"},
    "L0-L4": {"decode_below_bandwidth_roof", "fp8_eligible_gemms", "elementwise_chains",
              "kernel_far_below_roof"},
    "best": {"fp8_eligible_gemms", "kernel_far_below_roof"},
    "fp8": {"decode_below_bandwidth_roof", "kernel_far_below_roof"},
}
TIME_RULES = {"launch_bound", "decode_below_bandwidth_roof", "fp8_eligible_gemms",
              "elementwise_chains", "attention_not_flash", "kernel_far_below_roof"}


@pytest.fixture(scope="module")
def rungs(h200_home: Path) -> dict:
    return {name: session_analysis(h200_home, run_id) for name, run_id in H200_RUNS.items()}


@pytest.mark.parametrize("rung", sorted(EXPECTED))
def test_rules_on_each_rung(rungs: dict, rung: str) -> None:
    analysis, rec = rungs[rung]
    fired = {f.rule for f in analysis.advice}
    assert fired == EXPECTED[rung], sorted(fired)
    assert not [n for n in analysis.notes if "advice rule" in n]  # no rule crashed
    for f in analysis.advice:
        if f.rule in TIME_RULES:
            assert f.recoverable_us is not None and f.recoverable_us > 0, f.rule
            assert "per step" in f.recoverable and "median step latency" in f.recoverable


@pytest.mark.parametrize("rung", sorted(EXPECTED))
def test_layers_named_apply_and_are_not_in_the_run(rungs: dict, rung: str) -> None:
    analysis, rec = rungs[rung]
    have = set(rec["spec"]["layers"])
    for f in analysis.advice:
        named = set(re.findall(r"\(layer ([\w-]+)", f.action + " " + f.expected_effect))
        if f.layer:
            named.add(f.layer)
        for name in named:
            assert name in LAYERS, (f.rule, name)
            assert layer_applies(name, "dense", "cuda") and name not in have, (f.rule, name)
        assert not re.search(r"\bH100\b|1423|783 TFLOP", f.expected_effect + f.recoverable)


def test_fp8_names_its_layer_and_this_devices_ceilings(rungs: dict) -> None:
    analysis, _ = rungs["best"]
    fp8 = next(f for f in analysis.advice if f.rule == "fp8_eligible_gemms")
    assert fp8.layer == "L5-fp8" and "(layer L5-fp8" in fp8.action
    # calibrated on this H200 (tests/data/h200/ceilings.json), not the H100's 1423 / 783
    assert "FP8 1,302 vs bf16 746 TFLOP/s, measured ceilings of the NVIDIA H200" in \
        fp8.expected_effect
    # memory-bound decode GEMMs: half of gemv_m1_kernel's 3.66 ms per step and the rest
    assert 1_800 < fp8.recoverable_us < 2_000


def test_decode_attention_far_below_its_roof(rungs: dict) -> None:
    analysis, _ = rungs["best"]
    roof = next(f for f in analysis.advice if f.rule == "kernel_far_below_roof")
    assert roof.kernels[0].startswith("cudnn_generated_fort_native_sdpa_sm90_flash_fprop")
    assert "32 calls per step" in roof.finding and "KV cache" in roof.finding
    # 0.81 ms of attention per 5.07 ms step, for ~34 MB that take ~8 µs at 4.05 TB/s
    assert 780 < roof.recoverable_us < 830
    assert "16% of the 5.07 ms step" in roof.recoverable
    kv = next(e for e in roof.evidence if e.metric == "KV bytes per step")
    assert kv.value == pytest.approx(2 * 8 * 128 * 256 * 32 * 2 / 1e6, abs=0.05)
    assert "flash-decoding" in roof.action and roof.layer is None  # L3 is on already


def test_eager_run_is_launch_bound_by_its_real_step(rungs: dict) -> None:
    analysis, rec = rungs["L0"]
    lb = next(f for f in analysis.advice if f.rule == "launch_bound")
    assert lb.layer == "L4" and "(layer L4)" in lb.action and "(layer L5)" in lb.action
    # the timed 28.7 ms step, less ~6.5 ms of GPU work, nearly all of it waiting on launches
    assert 20_000 < lb.recoverable_us < 23_000
    assert "of the 28.7 ms step, median step latency" in lb.recoverable
    assert lb.evidence[0].source.endswith("(repeating kernel sequence (1738 kernels x 3 "
                                          "steps))")


H200_CAPTURE = Path("/work/gpu-artifacts/home/h")
MOE_RUNS = {"moe_all": "20261201-030421-efed75", "gptoss_all": "20261201-030440-78cf9f"}


@pytest.mark.skipif(not (H200_CAPTURE / "runs" / MOE_RUNS["moe_all"]).is_dir(),
                    reason="the H200 MoE captures (1.5-1.8 MB traces) are not in the repository")
@pytest.mark.parametrize("name", sorted(MOE_RUNS))
def test_moe_rungs_name_no_dense_layer(name: str, tmp_path: Path) -> None:
    from sessions.records import RunRecord
    from sessions.store import SessionStore

    run_id = MOE_RUNS[name]
    store = SessionStore(tmp_path)  # a copy: the capture folder is read-only to us
    shutil.copytree(H200_CAPTURE / "runs" / run_id, store.run_dir(run_id),
                    ignore=shutil.ignore_patterns("cache"))
    store.save(RunRecord.from_dict(__import__("json").loads(
        (store.run_dir(run_id) / "record.json").read_text())))
    shutil.copy2(H200_CAPTURE / "ceilings.json", tmp_path / "ceilings.json")
    analysis, rec = session_analysis(tmp_path, run_id)
    fired = {f.rule for f in analysis.advice}
    assert "syncs_in_step" not in fired and "launch_bound" in fired
    workload, have = rec["spec"]["workload"], set(rec["spec"]["layers"])
    for f in analysis.advice:
        for layer in set(re.findall(r"\(layer ([\w-]+)", f.action)) | ({f.layer} - {None}):
            assert layer_applies(layer, workload, "cuda") and layer not in have, (f.rule, layer)
    if "fp8_eligible_gemms" in fired:
        assert next(f for f in analysis.advice if f.rule == "fp8_eligible_gemms").layer \
            == "L5-moe-fp8"


def _budget(lines):  # type: ignore[no-untyped-def]
    from analyzers.sol_budget import SolBudget

    return SolBudget(step_ns=5_071_872, steps=3, kernel_ns=4_650_000, sol_ns=3_420_000,
                     idle_ns=400_000, host_ns=None, coverage=0.97, ceilings_source="measured",
                     device_name="NVIDIA H200", lines=tuple(lines))


CUDNN = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1_cga1x1"


def _line(name, category, launches, measured, sol, why, remedy=None, layer=None):  # type: ignore[no-untyped-def]
    from analyzers.sol_budget import BudgetLine

    return BudgetLine(kind="kernel", name=name, category=category, launches=launches,
                      measured_ns=measured, sol_ns=sol, lost_ns=measured - sol,
                      share_of_step=(measured - sol) / 5_071_872, bound="memory",
                      pct_of_roof=100.0 * sol / measured, remedy=remedy, layer=layer, why=why,
                      source="inventory")


def test_far_below_roof_reads_the_budget(h200_home: Path) -> None:
    """With a speed-of-light budget the rule takes its kernel line with the most time lost; the
    budget's figures, not the shape estimate, are quoted."""
    from analyzers.advice import advise

    analysis, rec = session_analysis(h200_home, H200_RUNS["best"])
    gemv = _line("gemv_m1_kernel", "gemm", 129, 3_659_400, 3_400_000,
                 "moves 14.0 GB per step at 3.83 TB/s, 93% of the copy roof")
    attention = _line(CUDNN, "attention", 32, 777_100, 8_300,
                      "reads 16.8 MB of KV cache per step at 22 GB/s against 4.05 TB/s",
                      "attention_kernel", None)
    analysis.budget = _budget([attention, gemv])
    roof = next(f for f in advise(analysis, rec) if f.rule == "kernel_far_below_roof")
    assert roof.kernels == (CUDNN,) and roof.recoverable_us == pytest.approx(768.8)
    assert "16.8 MB of KV cache" in roof.finding and "flash-decoding" in roof.action
    assert "speed-of-light budget (measured ceilings of the NVIDIA H200)" in roof.evidence[0].source
    # the timed step (no profiler): 5.07 ms median latency
    assert "15% of the 5.07 ms step, median step latency" in roof.recoverable
    # the GEMV is near its roof: with only it in the budget, nothing is far below
    analysis.budget = _budget([gemv])
    assert "kernel_far_below_roof" not in {f.rule for f in advise(analysis, rec)}
    analysis.budget = None  # degrade: the shape estimate
    assert "kernel_far_below_roof" in {f.rule for f in advise(analysis, rec)}
