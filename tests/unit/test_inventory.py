"""workloads.inventory: one eager step's ops, recorded for real on CPU (tiny presets)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from workloads import catalog, estimate, inventory
from workloads.inventory_format import decode, encode
from workloads.layers import APPLY_FUNCTIONS
from workloads.op_cost import OpCost

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def build(workload_name: str, layers: list[str], **params):
    from unittest import mock

    from workloads.run import load_workload

    spec = mock.Mock(target=None, workload=workload_name, preset="tiny", params=params)
    workload, merged = load_workload(spec)
    workload.build(CPU, torch.float32, merged, seed=0)
    for name in catalog.parse_layers(layers):
        APPLY_FUNCTIONS[name](workload, CPU)
    inputs = workload.make_inputs(0)
    with torch.inference_mode():
        workload.prepare(inputs)
    return workload, inputs


def ops_of(payload):
    inv, why = decode(payload)
    assert inv is not None, why
    return inv, [inv.op(i) for i in range(len(inv))]


def test_eager_dense_step_matches_the_analytic_flops():
    workload, inputs = build("dense", ["L0"])
    inv, ops = ops_of(inventory.record_step(workload, inputs, CPU))
    shape = workload.shape
    names = Counter(op["op"] for op in ops if op["kind"] in ("gemm", "attention"))
    # q, k, v, o, gate, up, down per layer + the LM head; QK^T and PV per layer
    assert names == {"aten::linear": 7 * shape["layers"] + 1, "aten::matmul": 2 * shape["layers"]}
    gemm_flops = sum(op["flops"] for op in ops if op["kind"] == "gemm")
    assert gemm_flops == estimate.decode_flops(shape, shape["prompt_len"] + 1)
    # views and no-op conversions launch nothing and are not listed
    assert not {"aten::view", "aten::transpose", "aten::slice", "aten::t"} & {o["op"] for o in ops}
    assert all(op["bytes"] is not None for op in ops if op["kind"] != "reduction")


def test_weights_are_read_once_per_step():
    workload, inputs = build("dense", ["L0"])
    _, ops = ops_of(inventory.record_step(workload, inputs, CPU))
    weight_bytes = sum(op["weight_bytes"] or 0 for op in ops if op["op"] == "aten::linear")
    counts = estimate.dense_param_counts(workload.shape)
    assert weight_bytes == counts.matmul * 4  # fp32


def test_graphs_and_compile_are_unwrapped_to_the_same_eager_ops():
    static, inputs = build("dense", ["L0", "L2"])
    _, want = ops_of(inventory.record_step(static, inputs, CPU))
    wrapped, inputs = build("dense", ["L0", "L2"])
    runtime = wrapped.runtime
    runtime.graphs, runtime.compile_mode = True, "max-autotune-no-cudagraphs"  # as L4 + L5 set
    runtime.invalidate()
    payload = inventory.record_step(wrapped, inputs, CPU)
    inv, got = ops_of(payload)
    assert wrapped.runtime is runtime  # put back
    assert runtime.graphs and runtime.compile_mode  # untouched
    assert [o["op"] for o in got] == [o["op"] for o in want]
    assert "CUDA graphs and torch.compile (max-autotune-no-cudagraphs) unwrapped" in inv.notes[0]
    # L2's static cache: the new K/V land with index_copy_, attention reads all max_seq keys
    assert sum(o["op"] == "aten::index_copy_" for o in got) == 2 * static.shape["layers"]


def test_grouped_experts_read_only_the_experts_that_got_tokens():
    workload, inputs = build("moe", ["L0", "L6-moe-grouped"])
    from workloads.layers.moe_block import moe_blocks

    if moe_blocks(workload.model)[0].backend != "grouped_mm":
        pytest.skip("torch._grouped_mm unavailable on this CPU build")
    block = moe_blocks(workload.model)[0]
    block.recorded = []  # the block keeps the expert choice of each call
    _, ops = ops_of(inventory.record_step(workload, inputs, CPU))
    grouped = [o for o in ops if o["op"] == "aten::_grouped_mm"]
    assert len(grouped) == 2 * workload.shape["layers"]
    chosen = block.recorded[0].unique().numel()
    assert chosen < workload.shape["experts"]
    first = grouped[0]
    per_expert = first["n"] * first["k"] * 4
    assert first["weight_bytes"] == chosen * per_expert


def test_encoding_is_compact_and_round_trips():
    calls = [("aten::linear", OpCost("gemm", 10.0, 20.0, m=1, n=2, k=3)),
             ("aten::add", OpCost("elementwise", 1.0, 3.0)),
             ("aten::linear", OpCost("gemm", 10.0, 20.0, m=1, n=2, k=3))]
    payload = encode(calls, ["a note"])
    assert payload["sequence"] == "0 1 0" and len(payload["columns"]["op"]) == 2
    inv, why = decode(payload)
    assert why is None and len(inv) == 3 and inv.op(2)["n"] == 2 and inv.notes == ["a note"]


@pytest.mark.parametrize("payload, reason", [
    (None, "has no operation inventory"),
    ({"version": 1, "error": "RuntimeError: boom"}, "could not be recorded: RuntimeError: boom"),
    ({"version": 9, "columns": {}, "sequence": ""}, "unknown inventory version"),
    ({"version": 1, "columns": {"op": ["a"], "kind": []}, "sequence": "0"}, "different lengths"),
    ({"version": 1, "columns": {"op": ["a"]}, "sequence": "0 1"}, "outside the rows"),
    ({"version": 1, "columns": {"op": ["a"]}, "sequence": "0 x"}, "not row indices"),
])
def test_bad_payloads_say_why(payload, reason):
    inv, why = decode(payload)
    assert inv is None and reason in why


def test_a_failing_step_gives_a_reason_not_an_exception():
    class Broken:
        def reset(self) -> None:
            pass

        def step(self, inputs):
            raise RuntimeError("CUDA out of memory")

    payload = inventory.record_or_reason(Broken(), None, CPU)
    assert payload == {"version": 1, "error": "RuntimeError: CUDA out of memory"}
