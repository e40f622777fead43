"""Fused decode-step ops around the GEMVs, as torch custom ops (one opaque call each for
torch.compile, captured by CUDA graphs like any kernel):

- ``aiperf::rope_kv_write`` (L3's decode path): RoPE on q and k, and the new token's k and v
  written into the KV cache at its position — static or paged, bf16 or FP8 e4m3 with the
  layer's scale — one launch instead of rotate q, rotate k, two index_copy_ (and an encode).
  Returns the rotated q [B, H, D]; mutates the two cache tensors.
- ``aiperf::rms_norm``: RMSNorm in one pass over each row. Under L5-gemv / L5-fp8 the decode
  step's norms and residual adds run inside the GEMVs (triton_gemv); this op is their large-M
  path (prefill, batches over 16), with the weight folded into the projection (None).
- ``aiperf::swiglu`` (L5-gemv, L5-fp8): silu(gate) * up from the fused gate-up projection.

Each matches the torch code of workloads.layers.dense_model rounding for rounding (fp32 math,
the same casts to the model dtype); the ``*_reference`` functions are that code, run on CPU
and used as the oracle in tests. Triton is imported lazily (kernels in
workloads.layers.kernels.fused).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from workloads.layers.kv_cache import FP8_KV_DTYPE, FP8_MAX

NORM_BLOCK_LIMIT = 1 << 16  # one program per row: rows wider than this take the torch path
SWIGLU_BLOCK = 1024


@functools.cache
def _kernels() -> Any:
    import triton

    from workloads.layers.kernels import fused

    return triton, fused


# ---- RoPE + KV-cache write --------------------------------------------------------------

def rope_rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """dense_model.apply_rope on x [..., D] with cos/sin broadcastable to it."""
    x32 = x.float()
    half = x32.shape[-1] // 2
    rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


def encode_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """kv_cache._Fp8Codec.encode."""
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_KV_DTYPE)


def rope_kv_write_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor,
                            k_cache: torch.Tensor, v_cache: torch.Tensor,
                            block_table: torch.Tensor | None, kv_scale: torch.Tensor | None
                            ) -> torch.Tensor:
    """q [B, H, D], k/v [B, Hkv, D], cos/sin [1, D] (the rows at the position)."""
    batch = q.shape[0]
    q_rot = rope_rotate(q, cos, sin)
    k_rot = rope_rotate(k, cos, sin)
    values = v
    if kv_scale is not None:
        k_rot, values = encode_fp8(k_rot, kv_scale), encode_fp8(v, kv_scale)
    pos = positions.reshape(-1).expand(batch)
    rows = torch.arange(batch, device=q.device)
    # fp8 has no index_put_ on CPU: write the bytes.
    as_bytes = kv_scale is not None
    k_dst = k_cache.view(torch.uint8) if as_bytes else k_cache
    v_dst = v_cache.view(torch.uint8) if as_bytes else v_cache
    k_src = k_rot.view(torch.uint8) if as_bytes else k_rot
    v_src = values.view(torch.uint8) if as_bytes else values
    if block_table is None:  # [B, Hkv, S, D]
        k_dst[rows, :, pos] = k_src
        v_dst[rows, :, pos] = v_src
    else:  # [blocks, page, Hkv, D]
        page = k_cache.shape[1]
        blocks = block_table[rows, pos // page].long()
        k_dst[blocks, pos % page] = k_src
        v_dst[blocks, pos % page] = v_src
    return q_rot.contiguous()


def rope_kv_write_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor,
                         k_cache: torch.Tensor, v_cache: torch.Tensor,
                         block_table: torch.Tensor | None, kv_scale: torch.Tensor | None
                         ) -> torch.Tensor:
    triton, fused = _kernels()
    batch, heads, dim = q.shape
    kv_heads = k.shape[1]
    paged = block_table is not None
    for name, t in (("q", q), ("k", k), ("v", v), ("k_cache", k_cache), ("v_cache", v_cache)):
        if t.stride(-1) != 1:
            raise ValueError(f"rope_kv_write needs unit stride along the head dim of {name}")
    cos, sin = cos.reshape(-1, dim)[0].contiguous(), sin.reshape(-1, dim)[0].contiguous()
    q_out = torch.empty(batch, heads, dim, device=q.device, dtype=q.dtype)
    half = dim // 2
    fused.rope_kv_write_kernel[(batch, heads + kv_heads)](
        q, k, v, cos, sin, positions, k_cache, v_cache,
        block_table if paged else positions, kv_scale if kv_scale is not None else cos, q_out,
        heads, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        positions.stride(0) if positions.numel() > 1 else 0, k_cache.stride(0),
        k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1),
        v_cache.stride(2), block_table.stride(0) if block_table is not None else 0, q_out.stride(0),
        q_out.stride(1), HALF=half, BLOCK_HALF=triton.next_power_of_2(half),
        PAGE=k_cache.shape[1] if paged else 0, FP8=kv_scale is not None, num_warps=1)
    return q_out


@torch.library.custom_op("aiperf::rope_kv_write", mutates_args=("k_cache", "v_cache"))
def rope_kv_write(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor,
                  sin: torch.Tensor, positions: torch.Tensor, k_cache: torch.Tensor,
                  v_cache: torch.Tensor, block_table: torch.Tensor | None,
                  kv_scale: torch.Tensor | None) -> torch.Tensor:
    if q.device.type == "cuda":
        return rope_kv_write_triton(q, k, v, cos, sin, positions, k_cache, v_cache,
                                    block_table, kv_scale)
    return rope_kv_write_reference(q, k, v, cos, sin, positions, k_cache, v_cache,
                                   block_table, kv_scale)


@rope_kv_write.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
      positions: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
      block_table: torch.Tensor | None, kv_scale: torch.Tensor | None) -> torch.Tensor:
    return q.new_empty(q.shape)


# ---- RMSNorm ------------------------------------------------------------------------------

def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float
                       ) -> torch.Tensor:
    """dense_model.RMSNorm.forward (without the weight multiply when ``weight`` is None)."""
    x32 = x.float()
    normed = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return normed if weight is None else weight * normed


def _rows(x: torch.Tensor) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1])
    return rows if rows.stride(-1) == 1 else rows.contiguous()


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    triton, fused = _kernels()
    hidden = x.shape[-1]
    rows = _rows(x)
    out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    block = triton.next_power_of_2(hidden)
    fused.rms_norm_kernel[(rows.shape[0],)](
        rows, weight if weight is not None else rows, out, hidden, float(eps), rows.stride(0),
        hidden, HAS_WEIGHT=weight is not None, BLOCK=block, num_warps=8 if block >= 4096 else 4)
    return out


@torch.library.custom_op("aiperf::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """One pass over each row. Where the decode step runs L5-gemv / L5-fp8 the norm is inside
    the GEMVs; this serves the large-M (prefill, batch > 16) path, weight folded (None)."""
    if x.device.type == "cuda" and x.shape[-1] <= NORM_BLOCK_LIMIT:
        return rms_norm_triton(x, weight, eps)
    return rms_norm_reference(x, weight, eps).contiguous()


@rms_norm.register_fake
def _(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    return x.new_empty(x.shape)


# ---- SwiGLU --------------------------------------------------------------------------------

def swiglu_reference(gate_up: torch.Tensor) -> torch.Tensor:
    """dense_model.SwiGLU: silu(gate) * up of the fused [gate; up] projection output."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def swiglu_triton(gate_up: torch.Tensor) -> torch.Tensor:
    triton, fused = _kernels()
    width = gate_up.shape[-1] // 2
    rows = _rows(gate_up)
    out = torch.empty(*gate_up.shape[:-1], width, device=gate_up.device, dtype=gate_up.dtype)
    grid = (rows.shape[0], triton.cdiv(width, SWIGLU_BLOCK))
    fused.swiglu_kernel[grid](rows, out, width, rows.stride(0), width, BLOCK=SWIGLU_BLOCK,
                              num_warps=4)
    return out


@torch.library.custom_op("aiperf::swiglu", mutates_args=())
def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    if gate_up.device.type == "cuda":
        return swiglu_triton(gate_up)
    return swiglu_reference(gate_up).contiguous()


@swiglu.register_fake
def _(gate_up: torch.Tensor) -> torch.Tensor:
    return gate_up.new_empty(*gate_up.shape[:-1], gate_up.shape[-1] // 2)
