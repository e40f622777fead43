"""MoE expert implementations, layers and workloads on CPU (GPU paths marked ``gpu``).

Parity tolerances are the guard's (workloads.parity) for the candidate's precision: fp32 1e-4,
bf16 5e-2, fp8 1.5e-1 max relative logit error; routing is replayed from the reference (see
workloads.layers.moe_block) so a near-tie flipping on rounding does not count as a mismatch.
"""

from __future__ import annotations

import pytest
import torch

from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.gptoss import create_workload as create_gptoss
from workloads.layers import LayerOutcome, apply_layers
from workloads.layers import moe_experts as mx
from workloads.layers.kv_cache import KVCache
from workloads.layers.moe_apply import NO_MOE, apply_grouped_experts
from workloads.moe import MoEAttention, param_counts, resolve_shape
from workloads.moe import create_workload as create_moe
from workloads.parity import compare

CPU = torch.device("cpu")


def random_experts(experts: int, hidden: int, inter: int, bias: bool, activation: str,
                   dtype: torch.dtype = torch.float32) -> mx.ExpertWeights:
    g = torch.Generator().manual_seed(1)

    def rand(*size: int) -> torch.Tensor:
        return (torch.randn(size, generator=g) / size[-1] ** 0.5).to(dtype)

    return mx.ExpertWeights(rand(experts, 2 * inter, hidden), rand(experts, hidden, inter),
                            rand(experts, 2 * inter) if bias else None,
                            rand(experts, hidden) if bias else None, activation)


@pytest.mark.parametrize("backend", ["grouped_mm", "bmm"])
@pytest.mark.parametrize("bias,activation", [(False, "swiglu"), (True, "gptoss")])
def test_sorted_dispatch_equals_the_masked_loop(backend, bias, activation):
    if backend == "grouped_mm" and not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch._grouped_mm unavailable in this torch")
    tokens, experts, top_k = 40, 64, 6
    ew = random_experts(experts, 32, 16, bias, activation)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(tokens, 32, generator=g)
    idx = torch.rand(tokens, experts, generator=g).topk(top_k, dim=-1).indices
    w = torch.rand(tokens, top_k, generator=g)
    want = mx.experts_loop(x, idx, w, ew)
    got = mx.experts_sorted(x, idx, w, ew, backend)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    # experts that got no token exist (40*6 slots over 64 experts) and are skipped right
    assert (torch.bincount(idx.reshape(-1), minlength=experts) == 0).any() or tokens * top_k > 640


def test_sort_routing_offsets_and_order():
    idx = torch.tensor([[2, 0], [0, 1], [2, 1]])
    routing = mx.sort_routing(idx, experts=4)
    assert routing.counts.tolist() == [2, 2, 2, 0]
    assert routing.offsets.tolist() == [2, 4, 6, 6]
    assert routing.expert_of.tolist() == [0, 0, 1, 1, 2, 2]
    assert routing.token_of.tolist() == [0, 1, 1, 2, 0, 2]


def test_fp8_rowwise_quantization_error_is_bounded():
    w = torch.randn(4, 32, 64, generator=torch.Generator().manual_seed(3))
    q, scale = mx.quantize_rows(w)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (4, 32)
    back = mx.dequantize_rows(q, scale, torch.float32)
    # e4m3 keeps 3 mantissa bits: relative rounding error <= 2^-4 of each value's magnitude,
    # and values far below the row max can fall into subnormals, so bound by the row max.
    rel = (back - w).abs() / w.abs().amax(dim=-1, keepdim=True)
    assert float(rel.max()) <= 2 ** -4
    assert float(rel.mean()) < 0.01


@pytest.mark.parametrize("create,workload", [(create_moe, "moe"), (create_gptoss, "gptoss")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_moe_layer_stack_keeps_parity_with_l0(create, workload, dtype):
    params = catalog.get_preset(workload, "tiny")
    stacks = [["L6-moe-grouped"], ["L5-moe-fp8", "L6-moe-grouped"]]
    if dtype == torch.float32:
        stacks.append(["L5-moe-fp8"])  # FP8 over the masked loop
    for stack in stacks:
        run = create()
        run.build(CPU, dtype, params, seed=0)
        inputs = run.make_inputs(0)
        apply_layers(["L0"], run, CPU, [])
        reference = run.parity_outputs(inputs)
        outcomes: list[LayerOutcome] = []
        apply_layers(stack, run, CPU, outcomes)
        candidate = run.parity_outputs(inputs, reference.tokens)
        report = compare(reference, candidate, run.compute_precision)
        assert report.ok, (workload, dtype, stack, report)
        assert all(o.applied for o in outcomes)
        if "L5-moe-fp8" in stack:
            assert run.compute_precision == "fp8" and report.max_rel_err > 0  # really rounded
        extra = run.extra()
        assert extra["moe_impl"]["dispatch"] == ("sorted" if "L6-moe-grouped" in stack else "loop")
        assert extra["routing_parity"]["token_layer_choices"] > 0
        assert extra["router"]["experts"] == params["experts"]


def test_moe_layers_do_nothing_without_moe_blocks():
    class NoMoE:
        name, model, compute_precision = "dense", torch.nn.Linear(2, 2), "fp32"

    assert apply_grouped_experts(NoMoE(), CPU) == NO_MOE  # type: ignore[arg-type]


def test_sliding_window_and_sinks_in_attention():
    shape = {**catalog.get_preset("gptoss", "tiny"), "batch": 1}
    shape = resolve_shape(shape, "gptoss")
    g = torch.Generator().manual_seed(4)

    def init(size: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(size, generator=g) * std if std else torch.zeros(size)

    x = torch.randn(1, 12, shape["hidden"], generator=torch.Generator().manual_seed(5))
    cos, sin = torch.ones(12, shape["head_dim"]), torch.zeros(12, shape["head_dim"])
    changed = x.clone()
    changed[:, 0] += 1.0
    slot = shape["max_seq"]

    def cache() -> KVCache:
        return KVCache(1, 1, shape["kv_heads"], slot + 1, shape["head_dim"], CPU,
                       torch.float32)

    for window, far_token_matters in ((4, False), (0, True)):
        torch.manual_seed(0)
        attention = MoEAttention(shape, 0, window, init, 1.0)
        last = attention(x, 0, cos, sin, cache(), slot)[:, -1]
        last_changed = attention(changed, 0, cos, sin, cache(), slot)[:, -1]
        assert (not torch.allclose(last, last_changed)) == far_token_matters
    # a sink takes probability mass: a very large sink logit drives the output to ~0
    attention.sinks.data.fill_(50.0)  # type: ignore[union-attr]
    assert float(attention(x, 0, cos, sin, cache(), slot).abs().max()) < 1e-6


def test_full_presets_fit_one_80gb_gpu_and_gptoss_is_20b_shaped():
    gptoss = resolve_shape(catalog.get_preset("gptoss", "20b"), "gptoss")
    assert (gptoss["layers"], gptoss["experts"], gptoss["top_k"], gptoss["hidden"]) == (24, 32, 4, 2880)
    assert (gptoss["heads"], gptoss["kv_heads"], gptoss["head_dim"]) == (64, 8, 64)
    assert 20.5e9 < param_counts(gptoss)["total"] < 21.5e9  # gpt-oss-20b: 20.9B parameters
    moe = resolve_shape(catalog.get_preset("moe", "full"), "moe")
    assert (moe["experts"], moe["top_k"], moe["shared_inter"] > 0) == (64, 6, True)
    for shape in (gptoss, moe):
        assert param_counts(shape)["total"] * 2 < 60e9  # bf16 weights leave room for the rest


def test_bad_params_are_one_line_errors():
    params = catalog.get_preset("moe", "tiny")
    with pytest.raises(WorkbenchError, match="unknown gating"):
        resolve_shape({**params, "gating": "argmax"})
    with pytest.raises(WorkbenchError, match="top_k"):
        resolve_shape({**params, "top_k": 65})
    with pytest.raises(WorkbenchError, match="unknown moe params"):
        resolve_shape({**params, "expertz": 3})
    run = create_gptoss()
    with pytest.raises(WorkbenchError, match="fixed"):
        run.build(CPU, torch.float32, {**catalog.get_preset("gptoss", "tiny"),
                                       "gating": "sigmoid"})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_grouped_and_fp8_paths_match_the_loop():
    device = torch.device("cuda")
    ew = random_experts(64, 256, 128, False, "swiglu", torch.bfloat16)
    ew.w13, ew.w2 = ew.w13.to(device), ew.w2.to(device)  # type: ignore[union-attr]
    assert mx.probe_grouped_mm(ew.w13) is None  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 256, generator=g).to(device, torch.bfloat16)
    idx = torch.rand(64, 64, generator=g).topk(6, dim=-1).indices.to(device)
    w = torch.rand(64, 6, generator=g).to(device, torch.bfloat16)
    want = mx.experts_loop(x, idx, w, ew).float()
    for backend in ("grouped_mm", "bmm"):
        got = mx.experts_sorted(x, idx, w, ew, backend).float()
        assert float((got - want).abs().max() / want.abs().max()) < 2e-2, backend
    if mx.probe_scaled_grouped_mm(ew.w13) is None:  # type: ignore[arg-type]
        q13, s13 = mx.quantize_rows(ew.w13)  # type: ignore[arg-type]
        q2, s2 = mx.quantize_rows(ew.w2)  # type: ignore[arg-type]
        fp8 = mx.ExpertWeights(None, None, w13_q=q13, w13_s=s13, w2_q=q2, w2_s=s2)
        got = mx.experts_sorted(x, idx, w, fp8, "grouped_mm").float()
        assert float((got - want).abs().max() / want.abs().max()) < 0.15
