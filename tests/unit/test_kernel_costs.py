"""analyzers.kernel_costs: where each kernel's FLOPs and bytes come from — the run's inventory,
the parent op's recorded shapes, the profiler's FLOPs, ncu — on real traces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzers.kernel_costs import attach_kernel_costs
from profilers.parsers.kernel_table import make_kernel_table
from profilers.parsers.kineto import load_kineto
from sessions.records import RunStatus
from sessions.store import SessionStore
from workbench.api.pipeline.analysis import analyze_paths, load_run_analysis
from workloads.spec import RunSpec

H200 = Path(__file__).resolve().parents[1] / "data" / "h200"


def test_external_trace_gets_gemm_and_attention_flops_from_op_shapes(h100_fixtures):
    path = h100_fixtures / "torch_trace.json"
    t = load_kineto(path)
    kernels, notes, match = attach_kernel_costs(t.kernels, t.ops, t.runtime)
    assert match is None
    tensor = kernels["category"].isin(["gemm", "attention"]).to_numpy()
    dur = kernels["dur_ns"].to_numpy(dtype="float64")
    known = kernels["flops"].notna().to_numpy()
    assert dur[tensor & known].sum() / dur[tensor].sum() >= 0.8
    # Truth from the raw file (stdlib): the 8192^3 matmul and the causal cuDNN attention.
    events = json.loads(path.read_text())["traceEvents"]
    mm = next(e for e in events if e.get("name") == "aten::mm")["args"]["Input Dims"]
    (m, k), (_, n) = mm[0], mm[1]
    big = kernels["op_name"] == "aten::mm"
    gemm = kernels[big & (kernels["category"] == "gemm")]
    assert (gemm["flops"] == 2 * m * n * k).all() and len(gemm) == 3
    attn = kernels[kernels["category"] == "attention"]
    sdpa = next(e for e in events if e.get("name") == "aten::_cudnn_attention_forward")["args"]
    b, h, s, d = sdpa["Input Dims"][0]
    assert sdpa["Concrete Inputs"][10] == "True"  # is_causal
    assert (attn["flops"] == 2 * b * h * (s * (s + 1) / 2) * 2 * d).all()
    assert (attn["dram_bytes"] == 4 * b * h * s * d * 2).all()  # q, k, v read, o written
    assert set(kernels.loc[tensor, "cost_source"].astype(str)) == {"op_shapes"}
    # A memset inside the GEMM op is not the GEMM: unknown, not a share of its FLOPs.
    memsets = kernels["kind"] == "memset"
    assert kernels.loc[memsets, "flops"].isna().all() and memsets.any()
    assert any("FLOPs known for" in n for n in notes)


def test_ops_frame_keeps_input_types_and_concrete_inputs(h100_fixtures):
    path = h100_fixtures / "torch_trace.json"
    ops = load_kineto(path).ops
    raw = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("cat") == "cpu_op"]
    assert len(ops) == len(raw)
    for row, event in zip(ops.itertuples(), raw, strict=True):
        assert json.loads(row.input_types) == event["args"]["Input type"]
        assert json.loads(row.concrete_inputs) == event["args"]["Concrete Inputs"]


def _fake_payload(layers: str) -> dict:
    pytest.importorskip("torch", reason="builds the inventory under torch's FakeTensorMode")
    from tests.support.fake_inventory import fake_inventory

    return fake_inventory("dense", "llama-3.1-8b", layers.split(","), legacy=True)  # old traces


def test_inventory_first_then_op_shapes_where_it_does_not_fit():
    t = load_kineto(H200 / "dense_8b_L0.trace.json.gz")
    kernels, _, match = attach_kernel_costs(t.kernels, t.ops, t.runtime, _fake_payload("L0"))
    assert match is not None and match.steps_matched == 1
    assert set(kernels["cost_source"].astype(str)) == {"inventory"}
    # The bf16 stack's inventory does not fit this eager trace: refused, and the eager trace's
    # own op shapes cost its GEMMs instead.
    wrong, notes, match = attach_kernel_costs(t.kernels, t.ops, t.runtime,
                                              _fake_payload("L0-L4,L5,L5-gemv"))
    assert match is not None and match.steps_matched == 0
    assert any("do not repeat" in n for n in notes)
    gemm = (wrong["category"] == "gemm").to_numpy()
    assert (wrong.loc[gemm, "cost_source"].astype(str) == "op_shapes").all()
    assert wrong.loc[gemm, "flops"].sum() == pytest.approx(
        kernels.loc[gemm, "flops"].sum(), rel=1e-6)


def test_graphed_trace_without_inventory_says_so():
    t = load_kineto(H200 / "dense_8b_best_bf16.trace.json.gz")
    kernels, notes, _ = attach_kernel_costs(t.kernels, t.ops, t.runtime,
                                            {"version": 1, "error": "RuntimeError: boom"})
    assert notes[0] == "no inventory costs: the run's inventory could not be recorded: " \
                       "RuntimeError: boom"
    # Only the token copy and position fill launched by ops outside the graph have shapes.
    in_graph = kernels["op_name"].isna()
    assert in_graph.sum() == len(kernels) - 2
    assert kernels.loc[in_graph, "flops"].isna().all()
    assert kernels.loc[in_graph, "cost_source"].isna().all()
    assert set(kernels.loc[~in_graph, "op_name"]) == {"aten::copy_", "aten::fill_"}
    assert notes[-1].startswith("FLOPs known for 0.0% of kernel time, bytes for 0.0%")


def test_ncu_values_stay_and_profiler_flops_are_the_last_resort():
    ncu = make_kernel_table({"name": ["nvjet_a", "elementwise_b"], "dur_ns": [10, 10],
                             "flops": [5.0, None], "dram_bytes": [7.0, None]}, source="ncu")
    kernels, _, _ = attach_kernel_costs(ncu)
    assert kernels["flops"].tolist()[0] == 5.0 and kernels["dram_bytes"].tolist()[0] == 7.0
    assert kernels["cost_source"].astype(object).tolist() == ["ncu", np.nan]
    torch_table = make_kernel_table({"name": ["nvjet_a"], "dur_ns": [10], "flops": [9.0]},
                                    source="torch")
    kernels, _, _ = attach_kernel_costs(torch_table)
    assert kernels["flops"].tolist() == [9.0] and kernels["dram_bytes"].isna().all()
    assert kernels["cost_source"].tolist() == ["with_flops"]


def test_a_stored_run_passes_its_inventory_to_the_analysis(tmp_path):
    store = SessionStore(tmp_path / "home")
    record = store.new_run(RunSpec(workload="dense", preset="llama-3.1-8b", profiler="torch",
                                   layers=["L0", "L1", "L2", "L3", "L4", "L5", "L5-gemv"]))
    shutil.copy(H200 / "dense_8b_best_bf16.trace.json.gz", store.run_dir(record.id) / "t.json.gz")
    record.status, record.artifacts = RunStatus.OK, {"trace": "t.json.gz"}
    record.env = {"device_name": "NVIDIA H200", "device_kind": "cuda", "driver": "580.159.04"}
    record.details = {"shape": {"dtype": "bfloat16"},
                      "inventory": _fake_payload("L0-L4,L5,L5-gemv")}
    store.save(record)
    analysis = load_run_analysis(store, store.get(record.id))
    assert (analysis.kernels["cost_source"].astype(str) == "inventory").all()
    roof = analysis.roofline  # one row per kernel name
    gemv = roof[roof["name"] == "gemv_m1_kernel"]
    assert len(gemv) == 1 and int(gemv["launches"].iloc[0]) == 129
    assert (gemv["bound"] == "memory").all()
    assert analysis.roofline_aggregate.flops_time_coverage == 1.0
    # The same trace analyzed as an artifact from elsewhere: no inventory, graphs hide the ops.
    _, external = analyze_paths([H200 / "dense_8b_best_bf16.trace.json.gz"], home=tmp_path)
    assert external.kernels.loc[external.kernels["op_name"].isna(), "flops"].isna().all()
    assert external.roofline_aggregate.flops_time_coverage < 0.01


def test_each_rank_of_a_multi_rank_trace_matches_on_its_own():
    from profilers.parsers.kernel_table import concat_kernel_tables

    one = load_kineto(H200 / "dense_8b_best_bf16.trace.json.gz").kernels
    other = one.copy()
    other["rank"] = pd.array([1] * len(other), dtype="Int64")
    other["start_ns"] = other["start_ns"] + 1_000  # the two ranks' kernels interleave in time
    both = concat_kernel_tables([one, other]).sort_values("start_ns", kind="stable")
    kernels, notes, match = attach_kernel_costs(both.reset_index(drop=True),
                                                inventory=_fake_payload("L0-L4,L5,L5-gemv"))
    assert match.steps_matched == 2
    assert (kernels["cost_source"].astype(str) == "inventory").all()
    by_rank = kernels.groupby("rank")["dram_bytes"].sum()
    assert by_rank[0] == pytest.approx(by_rank[1])
    assert any(n.startswith("rank 1: FLOPs and bytes from the run's operation inventory")
               for n in notes)
