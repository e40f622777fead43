"""The Triton kernels run by Triton's interpreter on CPU tensors, against their torch
references. Run as a child process with TRITON_INTERPRET=1 (the interpreter is a property of
the process): ``python -m tests.unit.triton_interpret_checks`` prints one JSON object, check
name -> measured errors (or "error"). tests/unit/test_triton_interpret.py asserts on it.

The interpreter differs from the GPU in two ways the checks allow for: bf16 ``tl.dot`` is
computed in fp32 (the kernels switch to it; see triton_support.interpreter_active) and a
downcast truncates where the GPU rounds to nearest even, so bf16 outputs may differ from the
reference by one bf16 ulp (exact rounding is checked on the GPU, tests marked gpu).
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from workloads.layers import triton_fused
from workloads.layers.kv_cache import FP8_KV_DTYPE
from workloads.layers.lowbit import quantize_fp8
from workloads.layers.triton_decode_attention import (
    decode_attention_reference,
    decode_attention_triton,
)
from workloads.layers.triton_gemv import _kernels as gemv_kernels
from workloads.layers.triton_gemv import _launch_m1, gemv_reference

CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}


def check(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    CHECKS[fn.__name__] = fn
    return fn


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref.double()).norm() / ref.double().norm())


def ulps_bf16(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest |out - ref| in units of the bf16 spacing at |ref| (2^-7 relative, at least)."""
    spacing = ref.float().abs().clamp_min(1e-30) * 2.0 ** -7
    return float(((out.float() - ref.float()).abs() / spacing).max())


def sdpa_decode(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Independent oracle: float64 SDPA of q [B, H, D] over dense keys/values [B, Hkv, T, D]."""
    group = q.shape[1] // keys.shape[1]
    keys = keys.double().repeat_interleave(group, 1)
    values = values.double().repeat_interleave(group, 1)
    return F.scaled_dot_product_attention(q.double()[:, :, None], keys, values)[:, :, 0]


def decode_case(batch: int, heads: int, kv_heads: int, dim: int, capacity: int, position: int,
                paged: bool, fp8: bool, window: int, splits: int, seed: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, dim, generator=gen).bfloat16()
    keys = torch.randn(batch, kv_heads, capacity, dim, generator=gen).bfloat16()
    values = torch.randn(batch, kv_heads, capacity, dim, generator=gen).bfloat16()
    scale = None
    if fp8:
        scale = torch.tensor([0.02])
        k_store = (keys.float() / scale).clamp(-448, 448).to(FP8_KV_DTYPE)
        v_store = (values.float() / scale).clamp(-448, 448).to(FP8_KV_DTYPE)
        keys, values = k_store.float() * scale, v_store.float() * scale  # what they decode to
    else:
        k_store, v_store = keys, values
    table = None
    if paged:
        page = 16
        per_seq = -(-capacity // page)
        table = torch.randperm(batch * per_seq, generator=gen).view(batch, per_seq)
        pool_k = torch.zeros(batch * per_seq, page, kv_heads, dim, dtype=k_store.dtype)
        pool_v = torch.zeros_like(pool_k)
        for b in range(batch):
            for slot in range(capacity):
                block, offset = int(table[b, slot // page]), slot % page
                pool_k.view(torch.uint8)[block, offset] = k_store[b, :, slot].view(torch.uint8)
                pool_v.view(torch.uint8)[block, offset] = v_store[b, :, slot].view(torch.uint8)
        k_store, v_store = pool_k, pool_v
    positions = torch.tensor([position])
    lo = max(0, position + 1 - window) if window else 0
    oracle = sdpa_decode(q, keys[:, :, lo:position + 1], values[:, :, lo:position + 1])
    out = decode_attention_triton(q, k_store, v_store, positions, table, scale, window,
                                  num_splits=splits)
    ref = decode_attention_reference(q, k_store, v_store, positions, table, scale, window)
    return {"rel_kernel": rel(out, oracle), "rel_reference": rel(ref, oracle),
            "finite": bool(out.float().isfinite().all())}


@check
def decode_static_gqa4_split() -> dict[str, Any]:
    return decode_case(1, 8, 2, 64, 300, 199, False, False, 0, 3, 0)


@check
def decode_static_mha_one_split() -> dict[str, Any]:
    return decode_case(2, 4, 4, 32, 100, 36, False, False, 0, 1, 1)


@check
def decode_static_gqa8_auto_splits_position_zero() -> dict[str, Any]:
    return decode_case(1, 16, 2, 64, 64, 0, False, False, 0, 0, 2)


@check
def decode_paged_fp8() -> dict[str, Any]:
    return decode_case(2, 8, 2, 64, 80, 70, True, True, 0, 2, 3)


@check
def decode_paged_bf16_window() -> dict[str, Any]:
    return decode_case(1, 4, 1, 32, 96, 90, True, False, 24, 4, 4)


@check
def decode_more_splits_than_blocks() -> dict[str, Any]:
    # 9 keys over 8 splits of 64-key blocks: all but one split empty (lse -inf, weight 0).
    return decode_case(1, 4, 2, 32, 64, 8, False, False, 0, 8, 5)


def rope_case(paged: bool, fp8: bool) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(10)
    batch, heads, kv_heads, dim, capacity, position = 2, 8, 2, 64, 40, 17
    qkv = torch.randn(batch, 1, (heads + 2 * kv_heads) * dim, generator=gen).bfloat16()
    q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
    q, k, v = (t.view(batch, -1, dim) for t in (q, k, v))  # strided views, as in the model
    angles = torch.arange(dim // 2).float() * 0.37 + 1.3
    cos, sin = torch.cat([angles, angles]).cos()[None], torch.cat([angles, angles]).sin()[None]
    scale = torch.tensor([0.011]) if fp8 else None
    dtype = FP8_KV_DTYPE if fp8 else torch.bfloat16
    table = None
    if paged:
        table = torch.randperm(2 * batch * 3, generator=gen)[:batch * 3].view(batch, 3)
        shape: tuple[int, ...] = (2 * batch * 3, 16, kv_heads, dim)
    else:
        shape = (batch, kv_heads, capacity, dim)
    caches = [torch.zeros(shape, dtype=dtype) for _ in range(4)]
    positions = torch.tensor([position])
    q_out = triton_fused.rope_kv_write_triton(q, k, v, cos, sin, positions, caches[0],
                                              caches[1], table, scale)
    q_ref = triton_fused.rope_kv_write_reference(q, k, v, cos, sin, positions, caches[2],
                                                 caches[3], table, scale)
    # a slot (one token of one KV head) was written when any of its bytes is non-zero
    written = (caches[0].view(torch.uint8) != 0).any(-1)
    expected = (caches[2].view(torch.uint8) != 0).any(-1)
    k_out, k_ref = caches[0].float(), caches[2].float()
    # FP8: a one-ulp bf16 difference in k can move the e4m3 value by one e4m3 ulp (2^-3).
    tolerance = 2.0 ** -3 if fp8 else 2.0 ** -7
    k_close = bool(((k_out - k_ref).abs() <= tolerance * k_ref.abs() + 1e-6).all())
    return {"q_ulps": ulps_bf16(q_out, q_ref), "v_equal": torch.equal(
        caches[1].view(torch.uint8), caches[3].view(torch.uint8)),
        "k_close": k_close, "same_slots_written": torch.equal(written, expected),
        "slots_written": int(expected.sum())}


@check
def rope_kv_static_bf16() -> dict[str, Any]:
    return rope_case(False, False)


@check
def rope_kv_paged_fp8() -> dict[str, Any]:
    return rope_case(True, True)


@check
def rms_norm_rows() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(20)
    x = torch.randn(3, 5, 300, generator=gen).bfloat16()
    weight = torch.randn(300, generator=gen).bfloat16()
    # the normalised value is rounded, then multiplied by the weight and rounded again
    return {"weighted_ulps": ulps_bf16(triton_fused.rms_norm_triton(x, weight, 1e-5),
                                       triton_fused.rms_norm_reference(x, weight, 1e-5)),
            "plain_ulps": ulps_bf16(triton_fused.rms_norm_triton(x, None, 1e-5),
                                    triton_fused.rms_norm_reference(x, None, 1e-5))}


@check
def swiglu_rows() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(21)
    gate_up = torch.randn(2, 1, 2 * 1500, generator=gen).bfloat16()  # two column blocks
    out = triton_fused.swiglu_triton(gate_up)
    return {"ulps": ulps_bf16(out, triton_fused.swiglu_reference(gate_up)),
            "shape": list(out.shape)}


def gemv_case(mode: int, fp8: bool, fused: bool = False, x_scale: float = 3.0,
              k: int = 512) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(30 + mode)
    n = 96
    weight = (torch.randn(n, k, generator=gen) / k ** 0.5)
    x = torch.randn(1, k, generator=gen).bfloat16() * x_scale
    residual = torch.randn(1, n, generator=gen).bfloat16() if fused else None
    rms_eps = 1e-5 if fused else 0.0
    scale = None
    if fp8:
        weight, scale = quantize_fp8(weight, per_row=True)
    else:
        weight = weight.bfloat16()
    triton, kernel, tables, _ = gemv_kernels()
    config = next(c for c in tables[fp8] if c.kwargs["MODE"] == mode)
    y = torch.empty(1, n, dtype=torch.bfloat16)
    _launch_m1(triton, kernel, config, x, weight, scale, y, residual, rms_eps)
    x64 = x.double()
    ref = x64 @ weight.double().t()
    if scale is not None:
        ref = ref * scale.double()[None, :]
    if fused:  # RMSNorm before (weight folded away), residual add after
        ref = ref / (x64.pow(2).mean(-1, keepdim=True) + rms_eps).sqrt() + residual.double()
    return {"rel": rel(y, ref), "rel_reference": rel(
        gemv_reference(x, weight, scale, residual, rms_eps), ref), "config": str(config)}


@check
def gemv_bf16_fma() -> dict[str, Any]:
    return gemv_case(0, False)


@check
def gemv_bf16_norm_and_residual() -> dict[str, Any]:
    return gemv_case(0, False, fused=True)


@check
def gemv_fp8_fma() -> dict[str, Any]:
    return gemv_case(0, True)


@check
def gemv_fp8_packed_f16() -> dict[str, Any]:
    return gemv_case(1, True)


@check
def gemv_fp8_packed_f16_norm_and_residual() -> dict[str, Any]:
    return gemv_case(1, True, fused=True)


@check
def gemv_fp8_packed_f16_norm_of_a_large_residual_stream() -> dict[str, Any]:
    # |x| up to ~1e5 over K = 4096 (8 steps per fp16 flush): products of raw x overflow
    # fp16; the normalised x cannot
    return gemv_case(1, True, fused=True, x_scale=30000.0, k=4096)


def main(names: list[str]) -> int:
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    for name in names or list(CHECKS):
        try:
            results[name] = CHECKS[name]()
        except Exception as exc:  # one failing check must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc(limit=4)}
    print(json.dumps(results, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                     else str(v)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
