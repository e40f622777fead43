"""The decode-step Triton kernels on a CUDA GPU: parity with SDPA across context lengths
(1..8193, lengths off the 64-key block and the 16-slot page), GQA ratios 1, 4, 8, bf16 and
FP8 KV, static and paged caches, replayed in a CUDA graph at new positions; the fused ops
bit-exact (or one rounding) against the model's torch code; every GEMV mode against float64;
the decoder with all of them under CUDA graphs and torch.compile against the unfused one.

    python -m pytest -q -m gpu tests/unit/test_decode_kernels_gpu.py
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workloads import catalog, dense
from workloads.layers import APPLY_FUNCTIONS, triton_fused
from workloads.layers.kv_cache import FP8_KV_DTYPE
from workloads.layers.lowbit import quantize_fp8
from workloads.layers.triton_decode_attention import (
    decode_attention_reference,
    decode_attention_triton,
)
from workloads.layers.triton_gemv import _kernels as gemv_kernels
from workloads.layers.triton_gemv import _launch_m1

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")
HEADS, DIM, PAGE = 32, 128, 16
BF16_REL = 1e-2


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm())


def make_cache(batch: int, kv_heads: int, capacity: int, paged: bool, fp8: bool, seed: int):
    """Random K/V for ``capacity`` slots; returns (stores, block table, scale, dense K, V as
    they decode) — the dense copies are what the oracle attends over."""
    gen = torch.Generator(device=CUDA).manual_seed(seed)
    keys = torch.randn(batch, kv_heads, capacity, DIM, device=CUDA, generator=gen).bfloat16()
    values = torch.randn(batch, kv_heads, capacity, DIM, device=CUDA, generator=gen).bfloat16()
    scale = None
    k_store, v_store = keys, values
    if fp8:
        scale = torch.tensor([0.02], device=CUDA)
        k_store = (keys.float() / scale).clamp(-448, 448).to(FP8_KV_DTYPE)
        v_store = (values.float() / scale).clamp(-448, 448).to(FP8_KV_DTYPE)
        keys, values = k_store.float() * scale, v_store.float() * scale
    table = None
    if paged:
        per_seq = -(-capacity // PAGE)
        table = torch.randperm(batch * per_seq, device=CUDA, generator=gen).view(batch, per_seq)
        pad = per_seq * PAGE - capacity

        def scatter(store: torch.Tensor) -> torch.Tensor:
            padded = F.pad(store.view(torch.uint8), (0, 0, 0, pad)) if pad else store.view(
                torch.uint8)
            blocks = padded.view(batch, kv_heads, per_seq, PAGE, DIM * store.element_size()
                                 ).permute(0, 2, 3, 1, 4)  # [B, blocks, page, Hkv, D bytes]
            pool = torch.empty(batch * per_seq, PAGE, kv_heads, DIM * store.element_size(),
                               device=CUDA, dtype=torch.uint8)
            pool[table.reshape(-1)] = blocks.reshape(-1, PAGE, kv_heads,
                                                     DIM * store.element_size())
            return pool.view(store.dtype)

        k_store, v_store = scatter(k_store), scatter(v_store)
    return k_store, v_store, table, scale, keys, values


def oracle(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, length: int
           ) -> torch.Tensor:
    group = q.shape[1] // keys.shape[1]
    k = keys[:, :, :length].float().repeat_interleave(group, 1)
    v = values[:, :, :length].float().repeat_interleave(group, 1)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        return F.scaled_dot_product_attention(q.float()[:, :, None], k, v)[:, :, 0]


@pytest.mark.parametrize("context", [1, 17, 64, 129, 1000, 2048, 4097, 8192, 8193])
@pytest.mark.parametrize("group", [1, 4, 8])
@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("paged", [False, True])
def test_decode_attention_matches_sdpa(context, group, fp8, paged):
    batch, kv_heads = 2, HEADS // group
    capacity = context + 40  # slots past the position hold random keys: must be ignored
    k_store, v_store, table, scale, keys, values = make_cache(batch, kv_heads, capacity,
                                                              paged, fp8, seed=context)
    q = torch.randn(batch, HEADS, DIM, device=CUDA).bfloat16()
    positions = torch.tensor([context - 1], device=CUDA)
    out = decode_attention_triton(q, k_store, v_store, positions, table, scale, 0)
    assert bool(out.isfinite().all())
    expected = oracle(q, keys, values, context)
    assert rel(out, expected) < BF16_REL
    reference = decode_attention_reference(q, k_store, v_store, positions, table, scale, 0)
    assert rel(reference, expected) < BF16_REL  # the paged layout is what the test meant


@pytest.mark.parametrize("splits", [1, 2, 7, 33, 64])
def test_any_split_count_gives_the_same_attention(splits):
    k_store, v_store, table, scale, keys, values = make_cache(1, 8, 3000, False, False, 5)
    q = torch.randn(1, HEADS, DIM, device=CUDA).bfloat16()
    positions = torch.tensor([2500], device=CUDA)
    out = decode_attention_triton(q, k_store, v_store, positions, None, None, 0,
                                  num_splits=splits)
    assert rel(out, oracle(q, keys, values, 2501)) < BF16_REL


def test_sliding_window_decode():
    k_store, v_store, table, scale, keys, values = make_cache(1, 8, 600, True, False, 6)
    q = torch.randn(1, HEADS, DIM, device=CUDA).bfloat16()
    out = decode_attention_triton(q, k_store, v_store, torch.tensor([499], device=CUDA),
                                  table, None, 128)
    expected = oracle(q, keys[:, :, 372:], values[:, :, 372:], 128)
    assert rel(out, expected) < BF16_REL


@pytest.mark.parametrize("paged, fp8", [(False, False), (True, True)])
def test_decode_attention_replays_in_a_cuda_graph_at_new_positions(paged, fp8):
    """The grid is fixed at capture; the length comes from the position tensor."""
    k_store, v_store, table, scale, keys, values = make_cache(1, 8, 8448, paged, fp8, 7)
    q = torch.randn(1, HEADS, DIM, device=CUDA).bfloat16()
    positions = torch.tensor([100], device=CUDA)
    decode_attention_triton(q, k_store, v_store, positions, table, scale, 0)  # compile
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = decode_attention_triton(q, k_store, v_store, positions, table, scale, 0)
    for position in (0, 100, 4095, 8191):
        positions.fill_(position)
        graph.replay()
        assert rel(out, oracle(q, keys, values, position + 1)) < BF16_REL, position


@pytest.mark.parametrize("paged, fp8", [(False, False), (True, False), (False, True),
                                        (True, True)])
def test_rope_kv_write_is_bit_exact_with_the_reference(paged, fp8):
    batch, heads, kv_heads, dim = 2, 32, 8, 128
    qkv = torch.randn(batch, 1, (heads + 2 * kv_heads) * dim, device=CUDA).bfloat16()
    q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
    q, k, v = (t.view(batch, -1, dim) for t in (q, k, v))
    cos_table, sin_table = dense.rope_tables(dim, 1024, 500000.0, CUDA)
    pos = torch.tensor([700], device=CUDA)
    cos, sin = cos_table[pos], sin_table[pos]
    dtype = FP8_KV_DTYPE if fp8 else torch.bfloat16
    scale = torch.tensor([0.017], device=CUDA) if fp8 else None
    table = torch.randperm(2 * 64, device=CUDA)[:batch * 64].view(batch, 64) if paged else None
    shape = (2 * 64, PAGE, kv_heads, dim) if paged else (batch, kv_heads, 1024, dim)
    caches = [torch.zeros(shape, device=CUDA, dtype=dtype) for _ in range(4)]
    q_out = triton_fused.rope_kv_write_triton(q, k, v, cos, sin, pos, caches[0], caches[1],
                                              table, scale)
    q_ref = triton_fused.rope_kv_write_reference(q, k, v, cos, sin, pos, caches[2], caches[3],
                                                 table, scale)
    # fp32 rounding of x*cos - y*sin may differ by one fp32 ulp (FMA contraction): compare
    # after the cast to bf16, where that can flip at most one bf16 ulp, rarely
    assert float((q_out.float() - q_ref.float()).abs().max()) <= float(
        q_ref.float().abs().max()) * 2 ** -7
    assert torch.equal(caches[1].view(torch.uint8), caches[3].view(torch.uint8))  # v: copied
    written = batch * kv_heads * dim * caches[0].element_size()  # bytes of one token's K
    assert caches[2].view(torch.uint8).count_nonzero() > written // 2
    k_diff = int((caches[0].view(torch.uint8) != caches[2].view(torch.uint8)).sum())
    assert k_diff <= 0.02 * written  # FMA contraction may move a rounding, rarely


def test_rms_norm_and_swiglu_match_the_model_math_on_the_gpu():
    x = torch.randn(3, 4096, device=CUDA).bfloat16()
    weight = torch.randn(4096, device=CUDA).bfloat16()
    for w in (weight, None):
        out = triton_fused.rms_norm_triton(x, w, 1e-5)
        ref = triton_fused.rms_norm_reference(x, w, 1e-5)
        assert float((out.float() - ref.float()).abs().max()) <= float(
            ref.float().abs().max()) * 2 ** -7  # reduction order: one bf16 ulp, rarely
        assert float((out != ref).float().mean()) < 0.01
    gate_up = torch.randn(1, 1, 2 * 14336, device=CUDA).bfloat16() * 4
    out = triton_fused.swiglu_triton(gate_up)
    ref = triton_fused.swiglu_reference(gate_up)
    assert float((out != ref).float().mean()) < 0.01


@pytest.mark.parametrize("m", [1, 7])
@pytest.mark.parametrize("fp8", [False, True])
def test_gemv_with_the_norm_and_residual_fused(m, fp8):
    """norm(x) @ W^T + residual from the raw x (the norm weight folded into W)."""
    from workloads.layers.triton_gemv import gemv_triton

    n, k = 6144, 4096
    w = torch.randn(n, k, device=CUDA) / k ** 0.5
    scale = None
    if fp8:
        w, scale = quantize_fp8(w, per_row=True)
    else:
        w = w.bfloat16()
    x = torch.randn(m, k, device=CUDA).bfloat16() * 5
    residual = torch.randn(m, n, device=CUDA).bfloat16()
    x64 = x.double()
    ref = (x64 / (x64.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()) @ w.double().t()
    if scale is not None:
        ref = ref * scale.double()[None, :]
    ref = ref + residual.double()
    assert rel(gemv_triton(x, w, scale, residual, 1e-5), ref) < 1e-2


@pytest.mark.parametrize("n, k", [(6144, 4096), (4096, 14336), (1000, 1000)])
def test_every_fp8_gemv_mode_matches_float64(n, k):
    w = torch.randn(n, k, device=CUDA) / k ** 0.5
    wq, scale = quantize_fp8(w, per_row=True)
    x = torch.randn(1, k, device=CUDA).bfloat16()
    ref = (x.double() @ wq.double().t()) * scale.double()[None, :]
    triton, kernel, tables, _ = gemv_kernels()
    assert {config.kwargs["MODE"] for config in tables[True]} == {0, 1, 2}
    for config in tables[True]:
        y = torch.full((1, n), float("nan"), device=CUDA, dtype=torch.bfloat16)
        _launch_m1(triton, kernel, config, x, wq, scale, y)
        assert rel(y, ref) < 1e-2, str(config)
    from workloads.layers import triton_gemv

    triton_gemv.m1_config(x, wq, scale)  # times every config; none may disagree
    assert not triton_gemv.REJECTED.get((0, n, k, wq.dtype, x.dtype, True))


def build_small(stack: list[str]) -> dense.DenseWorkload:
    workload = dense.DenseWorkload()
    params = {**catalog.get_preset("dense", "small"), "layers": 4, "new_tokens": 12}
    workload.build(CUDA, torch.bfloat16, params, seed=0)
    for name in ["L0", *stack]:
        APPLY_FUNCTIONS[name](workload, CUDA)
    return workload


@pytest.mark.parametrize("stack", [["L2", "L3", "L4", "L5-gemv"],
                                   ["L2", "L3", "L4", "L6-paged", "L6-fp8kv", "L5-gemv"],
                                   ["L2", "L3", "L4", "L5", "L5-fp8"]])
@torch.inference_mode()
def test_the_decoder_with_every_fused_op_tracks_the_unfused_one(stack):
    """Teacher-forced logits of the stack (graphed, compiled where L5) with L3's decode path
    and the fused norms, against the same stack without them."""
    unfused = build_small(stack)
    unfused.set_fast_decode(False)
    unfused.set_fused_norms(False)
    inputs = unfused.make_inputs(0)
    reference = unfused.parity_outputs(inputs)
    fused = build_small(stack)
    assert fused.model.fused_norms and fused.model.blocks[0].attn.fast_decode
    candidate = fused.parity_outputs(inputs, reference.tokens)
    tolerance = 0.05 if ("L5-fp8" in stack or "L6-fp8kv" in stack) else 0.02
    assert rel(candidate.logits.float(), reference.logits.float()) < tolerance


def test_fp8_stack_serves_without_its_bf16_weights():
    """peak_mem_bytes counts from prepare(): the FP8 stack's peak is the bf16 one's less
    (at least most of) half its linear weights."""
    peaks, linear_bytes = {}, 0
    for stack in (["L2", "L3", "L4", "L5-gemv"], ["L2", "L3", "L4", "L5-fp8"]):
        workload = build_small(stack)
        if stack[-1] == "L5-gemv":
            linear_bytes = sum(m.weight.numel() * 2 for m in workload.model.modules()
                               if hasattr(m, "weight") and m.weight.dim() == 2)
        inputs = workload.make_inputs(0)
        workload.prepare(inputs)
        for _ in range(3):
            workload.step(inputs)
        torch.cuda.synchronize()
        peaks[stack[-1]] = torch.cuda.max_memory_allocated()
        assert workload.extra()["peak_mem_before_prepare_bytes"] > 0
        del workload
        torch.cuda.empty_cache()
    assert peaks["L5-gemv"] - peaks["L5-fp8"] > 0.4 * linear_bytes, (peaks, linear_bytes)
