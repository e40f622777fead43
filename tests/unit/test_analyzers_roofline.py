"""Ceilings and roofline placement, checked against the real H100 ncu CSV."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from analyzers.ceilings import (
    Ceilings,
    cache_get,
    cache_put,
    ceilings_from_calibration,
    resolve_ceilings,
    spec_ceilings,
    spec_key,
)
from analyzers.roofline import points_frame, roofline
from profilers.parsers.kernel_table import make_kernel_table

H100 = "NVIDIA H100 80GB HBM3"
# Measured on the reference H100 (shared/GPU.md).
H100_MEASURED = {"device_name": H100, "driver": "580.159.04",
                 "gemm_flops": {"bf16": 783e12, "fp8": 1423e12, "tf32": 398e12, "fp32": 51e12},
                 "copy_bytes_per_s": 3.02e12}


def _read_ncu_raw(path):
    """Minimal reader of ``ncu --csv --page raw`` (the units of this file are already base
    units: ns, byte/s, hz, inst/cycle, %), independent of the ncu parser."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("==")]
    rows = list(csv.reader(lines))
    header, data = rows[0], rows[2:]  # rows[1] holds the units
    raw = pd.DataFrame(data, columns=header)
    metrics = raw.apply(lambda c: pd.to_numeric(c.str.replace(",", ""), errors="coerce"))
    kt = make_kernel_table({"name": raw["Kernel Name"].tolist(),
                            "dur_ns": metrics["gpu__time_duration.sum"].astype("int64").tolist()},
                           source="ncu")
    return kt, metrics, raw


def _points(result):
    """The per-launch rows as attribute bags, NaN as None (the values the old per-launch
    objects held)."""
    return [SimpleNamespace(**{k: None if not isinstance(v, str) and pd.isna(v) else v
                               for k, v in row.items()})
            for row in result.launches.to_dict(orient="records")]


@pytest.fixture(scope="module")
def ncu(h100_fixtures):
    return _read_ncu_raw(h100_fixtures / "ncu_raw.csv")


def test_spec_matching():
    assert spec_key(H100) == "H100 SXM"
    assert spec_key("NVIDIA H100 PCIe") == "H100 PCIe"
    assert spec_key("NVIDIA H200") == "H200"
    assert spec_key("NVIDIA A100-SXM4-80GB") == "A100 SXM 80GB"
    assert spec_key("NVIDIA L40S") == "L40S"
    assert spec_key("NVIDIA B200") == "B200"
    assert spec_ceilings("x86_64") is None
    sxm, h200 = spec_ceilings(H100), spec_ceilings("NVIDIA H200")
    assert sxm.peak("bf16") == pytest.approx(989e12, rel=0.01)
    assert sxm.peak("fp8") == pytest.approx(1979e12, rel=0.01)
    assert sxm.peak("tf32") == pytest.approx(495e12, rel=0.01)
    assert sxm.peak("fp32") == pytest.approx(67e12, rel=0.01)
    assert sxm.dram_bw == 3.35e12 and sxm.source == "spec"
    assert h200.peak("bf16") == sxm.peak("bf16") and h200.dram_bw == 4.8e12
    assert spec_ceilings("NVIDIA A100-SXM4-80GB").peak("fp8") is None


def test_measured_ceilings_and_cache():
    measured = ceilings_from_calibration(H100_MEASURED)
    assert measured.source == "measured"
    assert measured.peak("bf16") == 783e12 and measured.peak("fp16") == 783e12
    assert measured.peak("fp8") == 1423e12 and measured.peak("fp32") == 51e12
    assert measured.ridge("bf16") == pytest.approx(783e12 / 3.02e12)
    cache = cache_put({}, measured)
    cache = json.loads(json.dumps(cache))  # JSON-able
    assert cache_get(cache, H100, "580.159.04") == measured
    assert cache_get(cache, H100, "590.00") is None  # a new driver asks for a new calibration
    assert resolve_ceilings(H100, "580.159.04", cache).source == "measured"
    assert resolve_ceilings(H100, "590.00", cache).source == "spec"
    assert Ceilings.from_dict(measured.to_dict()) == measured


def test_ncu_fixture_gemm_on_tensor_roof(ncu):
    kt, metrics, raw = ncu
    result = roofline(kt, spec_ceilings(H100), metrics=metrics)
    gemm = next(p for p in _points(result) if p.name.startswith("nvjet"))
    row = metrics.iloc[[i for i, n in enumerate(raw["Kernel Name"]) if n.startswith("nvjet")][0]]
    assert gemm.roof == "tensor" and gemm.precision == "bf16"
    assert gemm.peak_flops_per_s == pytest.approx(989.4e12)  # never the 67 TFLOP/s FP32 roof
    # The file has FP32 counters only (all 0 for this GEMM): FLOPs are estimated from the
    # tensor-pipe utilization at the measured SM clock, and say so.
    assert row["smsp__sass_thread_inst_executed_op_ffma_pred_on.sum.per_cycle_elapsed"] == 0
    assert gemm.source == "estimate" and gemm.flops_method == "tensor pipe utilization"
    assert "sm__ops_path_tensor" in gemm.note
    expected = (row["sm__pipe_tensor_type_hmma_hgmma_qgmma_imma_igmma_bmma_bgmma_cycles_active"
                    ".avg.pct_of_peak_sustained_elapsed"] / 100 * 989.4e12
                * row["sm__cycles_elapsed.avg.per_second"] / 1.830e9
                * row["gpu__time_duration.sum"] * 1e-9)
    assert gemm.flops == pytest.approx(expected)
    assert gemm.flops == pytest.approx(2 * 4096**3, rel=0.01)  # a 4096^3 matmul
    assert gemm.dram_bytes == pytest.approx(
        row["dram__bytes.sum.per_second"] * row["gpu__time_duration.sum"] * 1e-9)
    assert gemm.bound == "compute"
    assert gemm.arithmetic_intensity > spec_ceilings(H100).ridge("bf16")
    assert gemm.achieved_flops_per_s == pytest.approx(770e12, rel=0.01)
    assert gemm.pct_of_roof == pytest.approx(77.8, abs=0.5)


def test_ncu_fixture_elementwise_memory_bound(ncu):
    kt, metrics, raw = ncu
    ceil = spec_ceilings(H100)
    result = roofline(kt, ceil, metrics=metrics)
    names = raw["Kernel Name"].tolist()
    for i, name in enumerate(names):
        if "vectorized_elementwise_kernel" not in name and "unrolled_elementwise" not in name:
            continue
        p, row = _points(result)[i], metrics.iloc[i]
        assert p.roof == "fp32" and p.source == "ncu"
        assert p.bound == "memory"
        assert p.achieved_bytes_per_s == pytest.approx(row["dram__bytes.sum.per_second"])
        assert p.pct_of_roof == pytest.approx(row["dram__bytes.sum.per_second"] / 3.35e12 * 100)
        secs = row["gpu__time_duration.sum"] * 1e-9
        clock = row["smsp__cycles_elapsed.avg.per_second"]
        per = "smsp__sass_thread_inst_executed_op_{}_pred_on.sum.per_cycle_elapsed"
        flops = (row[per.format("fadd")] + row[per.format("fmul")]
                 + 2 * row[per.format("ffma")]) * clock * secs
        assert p.flops == pytest.approx(flops)
    mul = _points(result)[3]  # x * s over 67M floats: ~1 FLOP per element
    assert mul.flops == pytest.approx(67.1e6, rel=0.01)
    assert _points(result)[5].flops == 0.0  # a copy does no math (a measured 0, not unknown)
    assert result.step.flops_time_coverage == 1.0
    assert result.step.precision == "bf16"
    frame = points_frame(result)
    assert len(frame) == len(kt) and "pct_of_roof" in frame.columns


def test_fp32_only_counters_leave_gemm_flops_unknown(ncu):
    kt, metrics, _ = ncu
    no_pipe = metrics[[c for c in metrics.columns if "pipe_tensor" not in c]]
    result = roofline(kt, spec_ceilings(H100), metrics=no_pipe)
    gemm = next(p for p in _points(result) if p.name.startswith("nvjet"))
    assert gemm.flops is None and gemm.roof == "tensor"
    assert "FP32-only" in gemm.note
    assert gemm.bound is None and gemm.pct_of_roof is None
    assert result.step.flops_time_coverage < 1.0


def test_tensor_op_counters_are_used(ncu):
    kt, metrics, _ = ncu
    metrics = metrics.copy()
    metrics["sm__ops_path_tensor_src_bf16_dst_fp32.sum"] = [0, 0, 2 * 4096**3, 0, 0, 0]
    result = roofline(kt, ceilings_from_calibration(H100_MEASURED), metrics=metrics)
    gemm = _points(result)[2]
    assert gemm.source == "ncu" and gemm.flops_method == "ncu tensor ops"
    assert gemm.flops == 2 * 4096**3
    assert gemm.peak_flops_per_s == 783e12  # measured bf16 roof
    assert gemm.bound == "compute"


def test_torch_estimates():
    # (op-shape FLOPs/bytes: tests/unit/test_op_cost.py, test_kernel_costs.py)
    kt = make_kernel_table({"name": ["nvjet_sm90_x", "triton_poi_fused_add_0"],
                            "dur_ns": [1_000_000, 10_000], "flops": [5e11, 1e6],
                            "dram_bytes": [1e8, 2e7]}, source="torch")
    result = roofline(kt, spec_ceilings(H100))
    gemm, add = _points(result)
    assert gemm.source == "estimate" and add.source == "estimate"
    assert gemm.roof == "tensor" and add.roof == "fp32"
    assert gemm.achieved_flops_per_s == pytest.approx(5e14)
    assert add.bound == "memory" and add.achieved_bytes_per_s == pytest.approx(2e12)
    assert result.step.flops == pytest.approx(5e11 + 1e6)
    assert result.step.time_ns == 1_010_000


def test_ncu_table_flops_from_shapes_used_but_fp32_counts_rejected(ncu):
    kt, metrics, _ = ncu
    no_pipe = metrics[[c for c in metrics.columns if "pipe_tensor" not in c]]
    shaped = kt.copy()
    shaped["flops"] = pd.array([None, None, 2 * 4096**3, None, None, None], dtype="Float64")
    gemm = _points(roofline(shaped, spec_ceilings(H100), metrics=no_pipe))[2]
    assert gemm.flops == 2 * 4096**3 and gemm.source == "estimate"
    assert gemm.bound == "compute"
    # A table whose flops column holds the FP32 counter sum (0 for this GEMM) is not trusted.
    fp32_filled = kt.copy()
    fp32_filled["flops"] = pd.array([None, None, 0.0, None, None, None], dtype="Float64")
    gemm = _points(roofline(fp32_filled, spec_ceilings(H100), metrics=no_pipe))[2]
    assert gemm.flops is None and gemm.roof == "tensor"


def test_ncu_parser_output_places_like_the_raw_file(ncu, h100_fixtures):
    ncu_csv = pytest.importorskip("profilers.parsers.ncu_csv")
    parsed = ncu_csv.load_ncu_csv(h100_fixtures / "ncu_raw.csv")
    kt, metrics, _ = ncu
    ours = _points(roofline(kt, spec_ceilings(H100), metrics=metrics))
    theirs = _points(roofline(parsed.kernels, spec_ceilings(H100), metrics=parsed.metrics))
    assert [p.bound for p in theirs] == [p.bound for p in ours]
    assert [p.roof for p in theirs] == [p.roof for p in ours]
    for a, b in zip(theirs, ours, strict=True):
        assert a.pct_of_roof == pytest.approx(b.pct_of_roof, rel=1e-6)
    gemm = theirs[2]
    assert gemm.roof == "tensor" and gemm.bound == "compute"
    assert gemm.flops == pytest.approx(2 * 4096**3, rel=0.01)
    assert all(p.bound == "memory" for p in theirs[3:])


def test_kernels_aggregate_by_name_rates_over_known_launches():
    """One row per kernel name; a launch without FLOPs/bytes neither dilutes the rates nor
    counts as 0; where the numbers came from follows the table's cost_source, else the
    source (torch: with_flops)."""
    kt = make_kernel_table({
        "name": ["gemv_m1_kernel", "gemv_m1_kernel", "gemv_m1_kernel", "triton_poi_fused_add_0"],
        "dur_ns": [10_000, 30_000, 60_000, 2_000],
        "flops": [2e7, 6e7, None, 1e4], "dram_bytes": [2e7, 6e7, None, 3e6]}, source="torch")
    h200 = spec_ceilings("NVIDIA H200")
    result = roofline(kt, h200)
    rows = result.kernels.set_index("name")
    assert list(result.kernels["name"]) == ["gemv_m1_kernel", "triton_poi_fused_add_0"]
    gemv = rows.loc["gemv_m1_kernel"]
    assert gemv["launches"] == 3 and gemv["total_ns"] == 100_000
    assert gemv["flops"] == 8e7 and gemv["dram_bytes"] == 8e7
    assert gemv["flops_coverage"] == pytest.approx(0.4)
    assert gemv["achieved_bytes_per_s"] == pytest.approx(8e7 / 40e-6)  # 2 TB/s, not 0.8
    assert gemv["bound"] == "memory"
    assert gemv["pct_of_roof"] == pytest.approx(8e7 / 40e-6 / 4.8e12 * 100)
    assert gemv["sol_ns"] == pytest.approx(8e7 / 4.8e12 * 1e9)  # the known launches only
    assert gemv["cost_source"] == "with_flops" and gemv["roof"] == "tensor"
    tagged = kt.assign(cost_source=pd.Categorical(["inventory", "inventory", None, "op_shapes"]))
    rows = roofline(tagged, h200).kernels.set_index("name")
    assert rows.loc["gemv_m1_kernel", "cost_source"] == "inventory"
    assert rows.loc["triton_poi_fused_add_0", "cost_source"] == "op_shapes"
    launches = roofline(tagged, h200).launches
    assert pd.isna(launches.loc[2, "cost_source"]) and pd.isna(launches.loc[2, "sol_ns"])
    assert str(launches["name"].dtype) == "category"  # columns, not objects per launch
    assert all(str(t) in ("category", "float64") for t in launches.dtypes)
