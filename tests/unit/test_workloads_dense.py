"""The dense decoder computes what a Llama-3 decoder computes (CPU, fp32, tiny shapes)."""

from __future__ import annotations

import math

import pytest
import torch

from workloads import catalog, dense, estimate
from workloads.errors import WorkbenchError

CPU = torch.device("cpu")


def tiny_shape(**overrides):
    shape = catalog.get_preset("dense", "tiny")
    shape.update(overrides)
    return dense.resolve_shape(shape)


def build(seed=0, **overrides):
    workload = dense.DenseWorkload()
    params = catalog.get_preset("dense", "tiny")
    params.update(overrides)
    workload.build(CPU, torch.float32, params, seed=seed)
    return workload


@torch.inference_mode()
def test_kv_cache_decode_matches_full_sequence_forward():
    workload = build()
    model = workload.model
    tokens = torch.randint(0, 512, (2, 20), generator=torch.Generator().manual_seed(1))
    full = model(tokens, 0, all_logits=True)  # [B, 20, V], one causal pass
    # Prefill 12 tokens, then feed the remaining 8 one at a time through the cache.
    step_logits = [model(tokens[:, :12], 0)]
    for position in range(12, 20):
        step_logits.append(model(tokens[:, position:position + 1], position))
    incremental = torch.stack(step_logits, dim=1)  # logits for positions 11..19
    torch.testing.assert_close(incremental, full[:, 11:], rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_gqa_attention_equals_repeated_kv_heads():
    torch.manual_seed(0)
    shape = tiny_shape()
    model = dense.DenseDecoder(shape, CPU, torch.float32, seed=0)
    attention = model.blocks[0].attn
    x = torch.randn(2, 6, shape["hidden"])
    cos, sin = model.rope_cos[:6], model.rope_sin[:6]
    out = attention(x, 0, 0, model.cache, cos, sin)
    assert out.shape == (2, 6, shape["hidden"])
    assert model.cache.keys[0].shape == (2, shape["kv_heads"], shape["max_seq"], 32)

    # Reference: expand K/V to all heads and use the textbook causal attention.
    heads, kv_heads, head_dim = 4, 2, 32
    q = attention.q_proj(x).view(2, 6, heads, head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(2, 6, kv_heads, head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(2, 6, kv_heads, head_dim).transpose(1, 2)
    q, k = dense.apply_rope(q, cos, sin), dense.apply_rope(k, cos, sin)
    k = k.repeat_interleave(heads // kv_heads, dim=1)
    v = v.repeat_interleave(heads // kv_heads, dim=1)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = attention.o_proj(expected.transpose(1, 2).reshape(2, 6, -1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_rope_is_a_rotation_that_depends_on_relative_position():
    cos, sin = dense.rope_tables(head_dim=16, max_seq=64, theta=500000.0, device=CPU)
    q = torch.randn(1, 1, 1, 16, generator=torch.Generator().manual_seed(0))
    k = torch.randn(1, 1, 1, 16, generator=torch.Generator().manual_seed(1))

    def rotated(x, position):
        return dense.apply_rope(x, cos[position:position + 1], sin[position:position + 1])

    # Norm preserved, position 0 is the identity, and <q_m, k_n> depends only on m - n.
    torch.testing.assert_close(rotated(q, 37).norm(), q.norm())
    torch.testing.assert_close(rotated(q, 0), q)
    dot_a = (rotated(q, 10) * rotated(k, 3)).sum()
    dot_b = (rotated(q, 50) * rotated(k, 43)).sum()
    torch.testing.assert_close(dot_a, dot_b, rtol=1e-5, atol=1e-5)


def test_rope_frequencies_follow_theta():
    cos, sin = dense.rope_tables(head_dim=8, max_seq=4, theta=10000.0, device=CPU)
    # Pair i rotates by position * theta^(-2i/d); check position 1, pair 1.
    angle = 10000.0 ** (-2 / 8)
    assert math.isclose(float(cos[1, 1]), math.cos(angle), rel_tol=1e-6)
    assert math.isclose(float(sin[1, 5]), math.sin(angle), rel_tol=1e-6)


def test_rmsnorm_normalizes_to_unit_rms():
    norm = dense.RMSNorm(64, 1e-6, CPU, torch.float32)
    x = torch.randn(3, 64) * 7
    torch.testing.assert_close(norm(x).pow(2).mean(-1), torch.ones(3), rtol=1e-4, atol=1e-4)


def test_parameter_count_matches_the_analytic_count():
    workload = build()
    numel = sum(p.numel() for p in workload.model.parameters())
    assert numel == estimate.dense_param_counts(workload.shape).total


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = build(seed=3), build(seed=3), build(seed=4)
    assert torch.equal(a.model.lm_head.weight, b.model.lm_head.weight)
    assert not torch.equal(a.model.lm_head.weight, c.model.lm_head.weight)
    assert torch.equal(a.make_inputs(7), b.make_inputs(7))


@torch.inference_mode()
def test_parity_outputs_shapes_and_forced_tokens():
    workload = build()
    inputs = workload.make_inputs(0)
    reference = workload.parity_outputs(inputs)
    assert reference.logits.shape == (8, 2, 512) and reference.tokens.shape == (8, 2)
    again = workload.parity_outputs(inputs, reference.tokens)
    assert torch.equal(again.logits, reference.logits)
    # Greedy: each step's token is the argmax of its logits.
    assert torch.equal(reference.tokens, reference.logits.argmax(-1))


@torch.inference_mode()
@pytest.mark.parametrize("mode, tokens", [("decode", 2), ("prefill", 64), ("generate", 16)])
def test_step_modes(mode, tokens):
    workload = build(mode=mode)
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    workload.reset()
    out = workload.step(inputs)
    assert workload.step_name == mode and workload.tokens_per_step() == tokens
    assert out.shape[0] == 2
    assert workload.flops_per_step() > 0 and workload.bytes_per_step() > 0


@torch.inference_mode()
def test_decode_step_is_repeatable_after_reset():
    workload = build()
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    first = workload.step(inputs).clone()
    workload.reset()
    assert torch.equal(workload.step(inputs), first)


@pytest.mark.parametrize("overrides, message", [
    ({"kv_heads": 3}, "multiple of kv_heads"),
    ({"heads": 5}, "even head_dim"),
    ({"max_seq": 16}, "exceeds max_seq"),
    ({"batch": 0}, "positive integer"),
    ({"dtype": "int8"}, "unsupported dtype"),
    ({"warp_speed": 9}, "unknown dense params"),
    ({"rope_theta": "fast"}, "positive number"),
    ({"norm_eps": 0}, "positive number"),
])
def test_bad_params_are_workbench_errors(overrides, message):
    with pytest.raises(WorkbenchError, match=message):
        tiny_shape(**overrides)


def test_unknown_mode_is_a_workbench_error():
    with pytest.raises(WorkbenchError, match="unknown dense mode"):
        build(mode="train")
