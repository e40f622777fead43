"""Split-KV decode attention (flash-decoding) for L3: one new query token per sequence against
the KV cache, read once at memory speed.

    out[b, i] = softmax_j(q[b, i] . K[b, kv(i), j] / sqrt(D)) V[b, kv(i), j],   j in [lo, len_b)

with len_b = positions[b] + 1 (the new token's K/V are already in the cache), lo = len_b -
window for a sliding window, else 0, and kv(i) = i // group (grouped-query attention).

Grid: (batch x kv_heads, splits). A program owns one KV head of one sequence and one slice of
its keys; all ``group`` query heads of that KV head ride along as the rows of one ``tl.dot``
(padded to 16), so K and V are read once per KV head, not once per query head. The slice
length is computed in the kernel from the runtime length (a device tensor), so the grid is
static — capturable in a CUDA graph, compiled once — while the work spreads evenly over the
splits at every position. Each split writes its normalised partial output and log-sum-exp
(base 2); a second, tiny kernel combines them. With one split the first kernel writes the
output directly and no combine runs.

Caches: the static cache [B, kv_heads, max_seq, D] (L2) or the paged pool [blocks,
block_size, kv_heads, D] behind a block table [B, blocks_per_seq] (L6-paged); bf16/fp16, or
FP8 e4m3 with one per-layer scale (L6-fp8kv: the dot runs in fp16 — e4m3 converts to fp16
exactly — and the scale is folded into the softmax scale and the output).

``decode_attention_reference`` is the same function in torch (CPU runs, tests). Triton is
imported lazily: CI and the CPU box import this module without it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import torch

from workloads.layers.triton_support import interpreter_active

MIN_SPLIT_TOKENS = 256  # below this many keys per split the combine costs more than it saves
WAVES = 2  # aim for this many programs per SM at batch 1


class KernelConfig(NamedTuple):
    block_n: int
    num_warps: int
    num_stages: int


DEFAULT_CONFIG = KernelConfig(block_n=64, num_warps=4, num_stages=2)


def _kv_heads(k_cache: torch.Tensor, paged: bool) -> int:
    return k_cache.shape[2] if paged else k_cache.shape[1]


def cache_capacity(k_cache: torch.Tensor, block_table: torch.Tensor | None) -> int:
    """Keys one sequence can hold: the static cache's max_seq, or blocks x block size."""
    if block_table is None:
        return k_cache.shape[2]
    return block_table.shape[1] * k_cache.shape[1]


def choose_splits(batch: int, kv_heads: int, capacity: int, sm_count: int) -> int:
    """Splits of the key range: enough programs for WAVES per SM, each split holding at least
    MIN_SPLIT_TOKENS of the cache's capacity (the grid is fixed for every position)."""
    want = -(-WAVES * sm_count // max(1, batch * kv_heads))
    return max(1, min(want, capacity // MIN_SPLIT_TOKENS))


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _gather_rows(cache: torch.Tensor, b: int, lo: int, hi: int,
                 block_table: torch.Tensor | None) -> torch.Tensor:
    """[kv_heads, hi - lo, D] of sequence b from a static or paged cache (reference path)."""
    if block_table is None:
        return cache[b, :, lo:hi]
    page = cache.shape[1]
    slots = torch.arange(lo, hi, device=cache.device)
    blocks = block_table[b, slots // page].long()
    return cache[blocks, slots % page].transpose(0, 1)


def decode_attention_reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                               positions: torch.Tensor, block_table: torch.Tensor | None,
                               kv_scale: torch.Tensor | None, window: int) -> torch.Tensor:
    """The kernel's function in torch, fp32 softmax: q [B, H, D] -> [B, H, D] in q.dtype."""
    batch, heads, dim = q.shape
    kv_heads = _kv_heads(k_cache, block_table is not None)
    group = heads // kv_heads
    out = q.new_empty(q.shape)
    lengths = (positions.reshape(-1).expand(batch) + 1).tolist()
    for b, length in enumerate(lengths):
        lo = max(0, length - window) if window else 0
        keys = _gather_rows(k_cache, b, lo, length, block_table).float()
        values = _gather_rows(v_cache, b, lo, length, block_table).float()
        if kv_scale is not None:
            keys, values = keys * kv_scale.float(), values * kv_scale.float()
        rows = q[b].float().view(kv_heads, group, dim)
        probs = (rows @ keys.transpose(-1, -2) / math.sqrt(dim)).softmax(dim=-1)
        out[b] = (probs @ values).reshape(heads, dim).to(q.dtype)
    return out


@functools.cache
def _kernels() -> Any:
    import triton

    from workloads.layers.kernels import decode_attention as kernels

    return triton, kernels.decode_attention_split_kv_kernel, kernels.decode_attention_combine_kernel, interpreter_active()


def decode_attention_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            positions: torch.Tensor, block_table: torch.Tensor | None,
                            kv_scale: torch.Tensor | None, window: int, num_splits: int = 0,
                            config: KernelConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """Launch the split-KV kernel (+ combine). ``num_splits`` 0 = choose from the cache's
    capacity and the SM count. Under Triton's interpreter (CPU tensors), as for fp32
    models, the dots run in IEEE fp32 (see triton_support.interpreter_active)."""
    triton, decode_attention_split_kv_kernel, decode_attention_combine_kernel, interpret = _kernels()
    batch, heads, dim = q.shape
    paged = block_table is not None
    kv_heads = _kv_heads(k_cache, paged)
    group = heads // kv_heads
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError("decode attention needs unit stride along the head dim")
    if num_splits <= 0:
        sm_count = _sm_count(q.device.index or 0) if q.device.type == "cuda" else 4
        num_splits = choose_splits(batch, kv_heads, cache_capacity(k_cache, block_table),
                                   sm_count)
    out = torch.empty(batch, heads, dim, device=q.device, dtype=q.dtype)
    split = num_splits > 1
    # Partials [B, H, splits, D] and their log-sum-exp [B, H, splits], both contiguous fp32.
    part = torch.empty(batch, heads, num_splits if split else 1, dim, device=q.device,
                       dtype=torch.float32)
    lse = torch.empty(batch, heads, num_splits if split else 1, device=q.device,
                      dtype=torch.float32)
    fp8 = k_cache.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)
    block_d = triton.next_power_of_2(dim)
    # unused pointers (no table, no scale) get any tensor; a shared position has stride 0
    table, scale = block_table if block_table is not None else positions, kv_scale
    table_stride = block_table.stride(0) if block_table is not None else 0
    pos_stride = positions.stride(0) if positions.numel() > 1 else 0
    decode_attention_split_kv_kernel[(batch * kv_heads, num_splits)](
        q, k_cache, v_cache, positions, table, scale if scale is not None else part, out, part,
        lse, (1.0 / math.sqrt(dim)) * math.log2(math.e), int(window), num_splits, kv_heads,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), table_stride, pos_stride,
        out.stride(0), out.stride(1), part.stride(0), part.stride(1), part.stride(2),
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), HEAD_DIM=dim,
        BLOCK_D=block_d, BLOCK_N=config.block_n, PAGE=k_cache.shape[1] if paged else 0,
        FP8=fp8, SPLIT=split, DOT_F32=interpret or q.dtype == torch.float32,
        num_warps=config.num_warps, num_stages=config.num_stages)
    if split:
        decode_attention_combine_kernel[(batch * heads,)](
            part, lse, out, num_splits, heads, part.stride(0), part.stride(1), part.stride(2),
            out.stride(0), out.stride(1), HEAD_DIM=dim, BLOCK_D=block_d,
            BLOCK_S=triton.next_power_of_2(num_splits), num_warps=4)
    return out


@torch.library.custom_op("aiperf::decode_attention", mutates_args=())
def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     positions: torch.Tensor, block_table: torch.Tensor | None,
                     kv_scale: torch.Tensor | None, window: int) -> torch.Tensor:
    """One opaque op for torch.compile; CUDA graphs capture its kernels like any other."""
    if q.device.type == "cuda":
        return decode_attention_triton(q, k_cache, v_cache, positions, block_table, kv_scale,
                                       window)
    return decode_attention_reference(q, k_cache, v_cache, positions, block_table, kv_scale,
                                      window)


@decode_attention.register_fake
def _(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
      block_table: torch.Tensor | None, kv_scale: torch.Tensor | None,
      window: int) -> torch.Tensor:
    return q.new_empty(q.shape)
