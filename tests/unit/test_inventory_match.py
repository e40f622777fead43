"""analyzers.inventory_match on real H200 torch-profiler traces of our workloads (one profiled
step each, tests/data/h200), against the inventory of the same spec recorded on CPU under
FakeTensorMode (the traces predate stored inventories; tests/support/fake_inventory.py)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from analyzers.ceilings import resolve_ceilings
from analyzers.inventory_match import match_inventory
from analyzers.roofline import roofline
from profilers.parsers.kernel_table import make_kernel_table
from profilers.parsers.kineto import load_kineto
from workloads.inventory_format import decode, encode
from workloads.op_cost import OpCost

H200 = Path(__file__).resolve().parents[1] / "data" / "h200"
DENSE = {  # trace -> the layers it was run with (dense llama-3.1-8b, decode, batch 1)
    "dense_8b_L0.trace.json.gz": "L0",
    "dense_8b_L0-L4.trace.json.gz": "L0-L4",
    "dense_8b_best_bf16.trace.json.gz": "L0-L4,L5,L5-gemv",
    "dense_8b_fp8.trace.json.gz": "L0-L4,L5,L5-fp8",
}


@cache
def fake_inventory(workload: str, preset: str, layers: str):
    pytest.importorskip("torch", reason="builds the inventory under torch's FakeTensorMode")
    from tests.support.fake_inventory import fake_inventory as record

    # The traces of tests/data/h200 predate the decode kernels: record the path they ran.
    inv, why = decode(record(workload, preset, layers.split(","), legacy=True))
    assert inv is not None, why
    return inv


@cache
def trace(name: str):
    return load_kineto(H200 / name)


def h200_ceilings():
    cache = json.loads((H200 / "ceilings.json").read_text())
    return resolve_ceilings("NVIDIA H200", "580.159.04", cache)


def time_share(kernels, known: np.ndarray) -> float:
    dur = kernels["dur_ns"].to_numpy(dtype="float64")
    return float(dur[known].sum() / dur.sum())


@pytest.mark.parametrize("name", list(DENSE))
def test_dense_8b_traces_get_flops_and_bytes_for_nearly_all_kernel_time(name):
    kernels = trace(name).kernels
    inv = fake_inventory("dense", "llama-3.1-8b", DENSE[name])
    match = match_inventory(kernels, inv)
    assert match.steps_matched == 1, match.notes
    assert time_share(kernels, ~np.isnan(match.flops)) >= 0.95
    assert time_share(kernels, ~np.isnan(match.dram_bytes)) >= 0.95
    # Every GEMM/attention op's FLOPs landed on exactly one kernel of the step.
    gemm_flops = sum(inv.op(i)["flops"] for i in range(len(inv))
                     if inv.op(i)["kind"] in ("gemm", "attention"))
    anchors = kernels["category"].isin(["gemm", "attention"]).to_numpy() & ~kernels[
        "name"].astype(str).str.contains(r"^triton_|splitKreduce", regex=True).to_numpy()
    assert np.nansum(match.flops[anchors]) == pytest.approx(gemm_flops, rel=1e-9)


@pytest.mark.parametrize("name", list(DENSE))
def test_decode_gemm_and_gemv_rows_are_memory_bound_near_the_copy_roof(name):
    kernels = trace(name).kernels.copy()
    match = match_inventory(kernels, fake_inventory("dense", "llama-3.1-8b", DENSE[name]))
    kernels["flops"], kernels["dram_bytes"] = match.flops, match.dram_bytes
    ceilings = h200_ceilings()
    launches = roofline(kernels, ceilings, precision="bf16").launches
    weight_gemms = launches[launches["name"].astype(str).str.startswith(("nvjet", "gemv_m1"))]
    assert len(weight_gemms)
    assert (weight_gemms["bound"] == "memory").all()
    # The whole weight stream: bytes / time of all of them near (and not above) the spec peak.
    moved = weight_gemms["dram_bytes"].sum()
    seconds = weight_gemms["dur_ns"].sum() * 1e-9
    assert 0.5 * ceilings.dram_bw < moved / seconds < 4.8e12


def test_the_fp8_stack_reads_half_the_weight_bytes_of_the_bf16_stack():
    best = match_inventory(trace("dense_8b_best_bf16.trace.json.gz").kernels,
                           fake_inventory("dense", "llama-3.1-8b", "L0-L4,L5,L5-gemv"))
    fp8 = match_inventory(trace("dense_8b_fp8.trace.json.gz").kernels,
                          fake_inventory("dense", "llama-3.1-8b", "L0-L4,L5,L5-fp8"))
    gemv = trace("dense_8b_best_bf16.trace.json.gz").kernels["name"] == "gemv_m1_kernel"
    gemv8 = trace("dense_8b_fp8.trace.json.gz").kernels["name"] == "gemv_m1_kernel"
    bf16_bytes, fp8_bytes = np.nansum(best.dram_bytes[gemv]), np.nansum(fp8.dram_bytes[gemv8])
    assert fp8_bytes / bf16_bytes == pytest.approx(0.5, abs=0.01)
    assert np.nansum(best.flops[gemv]) == np.nansum(fp8.flops[gemv8])


def _gpu_step_windows(path: Path) -> list[tuple[int, int]]:
    """The trace's own "aiperf:step" GPU ranges, read with the standard library."""
    events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    return sorted((round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)) for e in events
                  if e.get("cat") == "gpu_user_annotation" and e.get("name") == "aiperf:step")


def test_three_profiled_steps_are_cut_apart_without_step_ranges():
    name = "dense_8b_best_bf16_3steps.trace.json.gz"
    kernels = load_kineto(H200 / name).kernels
    match = match_inventory(kernels, fake_inventory("dense", "llama-3.1-8b", "L0-L4,L5,L5-gemv"))
    assert match.steps_matched == 3
    assert time_share(kernels, ~np.isnan(match.dram_bytes)) == 1.0
    start = kernels["start_ns"].to_numpy(dtype="int64")
    per_step = [np.nansum(match.dram_bytes[(start >= lo) & (start < hi)])
                for lo, hi in _gpu_step_windows(H200 / name)]
    assert len(per_step) == 3 and sum(per_step) == pytest.approx(np.nansum(match.dram_bytes))
    assert per_step[0] == pytest.approx(per_step[1]) == pytest.approx(per_step[2])
    # given the windows, the same answer
    windowed = match_inventory(kernels, fake_inventory("dense", "llama-3.1-8b",
                                                       "L0-L4,L5,L5-gemv"),
                               step_windows=_gpu_step_windows(H200 / name))
    np.testing.assert_allclose(windowed.dram_bytes, match.dram_bytes)


def test_split_k_reduce_kernels_get_their_own_small_cost():
    kernels = trace("dense_8b_L0.trace.json.gz").kernels
    match = match_inventory(kernels, fake_inventory("dense", "llama-3.1-8b", "L0"))
    names = kernels["name"].astype(str)
    reduce = names.str.contains("splitKreduce").to_numpy()
    split_gemm = names.str.contains("nvjet.*splitK", regex=True).to_numpy()
    assert reduce.sum() == split_gemm.sum() > 0
    # a reduce moves partial sums of a [1, N] output, the GEMM its whole [N, K] weight
    assert np.nanmax(match.dram_bytes[reduce]) < 1e-2 * np.nanmin(match.dram_bytes[split_gemm])


def test_the_wrong_inventory_is_refused_not_forced():
    kernels = trace("dense_8b_best_bf16.trace.json.gz").kernels
    match = match_inventory(kernels, fake_inventory("dense", "llama-3.1-8b", "L0"))
    assert match.steps_matched == 0 and np.isnan(match.flops).all()
    assert any("do not repeat the inventory's 289 GEMM + 0 attention ops" in n
               for n in match.notes), match.notes
    assert match.class_totals["gemm"]["flops"] > 1.5e10  # the step's totals are still known
    assert any(n.startswith("the inventory's step totals: gemm 15.1 GFLOP / 15 GB;")
               for n in match.notes)


def _synthetic(names: list[str], inventory_rows: list[tuple[str, int]]):
    kt = make_kernel_table({"name": names, "dur_ns": [10] * len(names),
                            "start_ns": [100 * i for i in range(len(names))]}, source="torch")
    calls = [("aten::linear", OpCost("gemm", float(n), float(n), m=1, n=n, k=n))
             for _, n in inventory_rows]
    inv, _ = decode(encode(calls))
    return kt, inv


def test_a_shifted_alignment_is_caught_by_the_one_kernel_per_shape_check():
    # Two steps of [A (n=8), B (n=16)]; an extra GEMM kernel in front shifts everything by one.
    kt, inv = _synthetic(["nvjet_x", "nvjet_a", "nvjet_b", "nvjet_a", "nvjet_b"],
                         [("A", 8), ("B", 16)])
    match = match_inventory(kt, inv)
    assert np.isnan(match.flops).all()
    assert "land on several kernel names" in match.notes[0]
    aligned_kt, inv = _synthetic(["nvjet_a", "nvjet_b", "nvjet_a", "nvjet_b"], [("A", 8), ("B", 16)])
    assert match_inventory(aligned_kt, inv).flops.tolist() == [8, 16, 8, 16]


@pytest.mark.slow
@pytest.mark.parametrize("name, workload, preset, layers", [
    ("moe_full_fp8_grouped.kernels.json.gz", "moe", "full", "L0,L1,L5-moe-fp8,L6-moe-grouped"),
    ("gptoss_20b_grouped.kernels.json.gz", "gptoss", "20b", "L0,L1,L6-moe-grouped"),
])
def test_moe_traces_match_too(name, workload, preset, layers):
    kernels = trace(name).kernels
    match = match_inventory(kernels, fake_inventory(workload, preset, layers))
    assert match.steps_matched == 1, match.notes
    assert time_share(kernels, ~np.isnan(match.dram_bytes)) >= 0.95
    grouped = kernels["name"].astype(str).str.contains("GroupProblemShape").to_numpy()
    assert grouped.sum() == 2 * {"moe": 26, "gptoss": 24}[workload]
    assert not np.isnan(match.flops[grouped]).any()
