"""Kineto parser on the real H100 trace: totals, links, units, gzip, directories."""

from __future__ import annotations

import gzip
import json
import shutil
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from profilers.parsers.kineto import load_kineto
from workloads.errors import WorkbenchError


def _raw(path: Path) -> list[dict]:
    return json.loads(path.read_text())["traceEvents"]


def test_kernel_total_equals_raw_sum(h100_fixtures):
    path = h100_fixtures / "torch_trace.json"
    raw_us = sum(e["dur"] for e in _raw(path) if e.get("cat") == "kernel")
    trace = load_kineto(path)
    assert trace.kernel_total_ns() == pytest.approx(raw_us * 1000, rel=1e-3)
    assert abs(trace.kernel_total_ns() - raw_us * 1000) <= len(trace.kernels)  # <=1 ns each


def test_gzipped_fixture_gives_the_same_table(h100_fixtures, tmp_path):
    src = h100_fixtures / "torch_trace.json"
    gz = tmp_path / "trace.json.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    plain, packed = load_kineto(src), load_kineto(gz)
    assert packed.kernel_total_ns() == plain.kernel_total_ns()
    assert packed.kernels["name"].tolist() == plain.kernels["name"].tolist()


def test_kinds_durations_and_launch_fields(h100_fixtures):
    path = h100_fixtures / "torch_trace.json"
    raw = [e for e in _raw(path) if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")]
    k = load_kineto(path).kernels
    assert len(k) == len(raw) == 26
    assert (k["kind"] == "memset").sum() == sum(e["cat"] == "gpu_memset" for e in raw)
    assert k["source"].unique().tolist() == ["torch"]
    by_corr = {e["args"]["correlation"]: e for e in raw}
    exact_ts = {e["args"]["correlation"]: int((e["ts"] * 1000).quantize(1, ROUND_HALF_EVEN))
                for e in json.loads(path.read_text(), parse_float=Decimal)["traceEvents"]
                if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")}
    for row in k.itertuples():
        e = by_corr[row.correlation]
        assert row.name == e["name"]
        assert row.dur_ns == round(e["dur"] * 1000)
        assert row.start_ns == exact_ts[row.correlation]  # exact, despite 16-digit microseconds
        assert row.stream == e["args"]["stream"] and row.device == e["args"]["device"]
        if e["cat"] == "kernel":
            assert row.grid == tuple(e["args"]["grid"]) and row.block == tuple(e["args"]["block"])
            assert row.registers == e["args"]["registers per thread"]
            assert row.shared_mem == e["args"]["shared memory"]
    assert k["start_ns"].is_monotonic_increasing


def test_parent_ops_by_external_id(h100_fixtures):
    trace = load_kineto(h100_fixtures / "torch_trace.json")
    k = trace.kernels
    ops = dict(zip(k["name"].astype(str), k["op_name"], strict=True))
    assert ops["nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT"] == "aten::mm"
    assert ops["nvjet_sm90_hsh_48x64_64x15_4x1_v_bz_bias_TNN"] == "aten::addmm"
    assert next(v for n, v in ops.items() if n.startswith("cudnn")) == "aten::_cudnn_attention_forward"
    assert next(v for n, v in ops.items() if "Gelu" in n) == "aten::gelu"
    assert k["op_name"].notna().all()
    assert len(trace.ops) == 60 and trace.ops["input_dims"].notna().any()
    assert set(trace.runtime["name"].astype(str)) >= {"cudaLaunchKernel", "cuLaunchKernelEx"} or len(
        trace.runtime) == 92
    assert trace.device_properties[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert trace.meta["baseTimeNanoseconds"] == 1790857026000000000
    assert trace.meta["schemaVersion"] == 1 and trace.meta["rank"] == 0


def _event(**kw):
    base = {"ph": "X", "pid": 0, "tid": 7, "ts": 10.0, "dur": 1.0}
    base.update(kw)
    return base


def test_correlation_fallback_and_flops_on_first_kernel(tmp_path):
    events = [
        _event(cat="cpu_op", name="aten::mm", ts=0.0, dur=100.0, args={"External id": 5, "flops": 2e9}),
        _event(cat="cuda_runtime", name="cudaLaunchKernel", ts=10.0, dur=2.0, args={"correlation": 77}),
        _event(cat="kernel", name="nvjet_a", ts=20.0, dur=3.5, args={"correlation": 77}),
        _event(cat="kernel", name="splitKreduce_kernel", ts=24.0, dur=1.0,
               args={"correlation": 78, "External id": 5}),
        _event(cat="gpu_memcpy", name="Memcpy DtoD (Device -> Device)", ts=30.0, dur=0.5, args={}),
    ]
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"traceEvents": events, "distributedInfo": {"rank": 3}}))
    k = load_kineto(p).kernels
    assert k["op_name"].tolist()[:2] == ["aten::mm", "aten::mm"] and k["op_name"].isna().tolist()[2]
    assert k["flops"].tolist()[0] == 2e9 and k["flops"].isna().tolist() == [False, True, True]
    assert k["category"].tolist() == ["gemm", "gemm", "memcpy"]
    assert set(k["rank"]) == {3}


def test_directory_of_rank_traces(h100_fixtures, tmp_path):
    for i in range(2):
        shutil.copy(h100_fixtures / "torch_trace.json", tmp_path / f"rank{i}.json")
    trace = load_kineto(tmp_path)
    single = load_kineto(h100_fixtures / "torch_trace.json")
    assert len(trace.kernels) == 2 * len(single.kernels)
    assert sorted(set(trace.kernels["rank"])) == [0, 1]
    assert trace.kernel_total_ns() == 2 * single.kernel_total_ns()


def test_bare_array_and_empty_traces(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([_event(cat="kernel", name="k", dur=2.0)]))
    assert load_kineto(p).kernel_total_ns() == 2000
    p.write_text('{"traceEvents": []}')
    assert len(load_kineto(p).kernels) == 0


@pytest.mark.parametrize("content", [b"", b"{", b'{"traceEvents": [{"ph": "X"', b"\xff\xfe\x00", b"{}"])
def test_bad_files_raise_workbench_error(tmp_path, content):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(WorkbenchError) as err:
        load_kineto(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_chunked_decoding_matches_whole_decoding(h100_fixtures, tmp_path, monkeypatch):
    from profilers.parsers import _trace_stream

    whole = load_kineto(h100_fixtures / "torch_trace.json")
    monkeypatch.setattr(_trace_stream, "CHUNK", 700)
    monkeypatch.setattr(_trace_stream, "READ_BLOCK", 333)
    small = load_kineto(h100_fixtures / "torch_trace.json")
    assert small.kernel_total_ns() == whole.kernel_total_ns()
    assert small.kernels["op_name"].tolist() == whole.kernels["op_name"].tolist()
    assert len(small.ops) == len(whole.ops) and len(small.runtime) == len(whole.runtime)
