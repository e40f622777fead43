"""Attention kernels for the dense decoder: eager (L0), SDPA (L3), FlexAttention (L3, sliding
window on CUDA); L3 also turns on the one-token decode path (split-KV Triton decode attention
over the cache in place, with the fused RoPE + KV write: workloads.layers.triton_decode_attention).

Every kernel takes q [B, heads, S, D] and the cache's keys/values [B, kv_heads, T, D] and
returns [B, heads, S, D]. Which keys a query may see is decided by positions only:
key slot j is visible to the query at position p when j <= p (and j > p - window when a
sliding window is set). ``allowed_mask`` returns None when every key is visible, so the L0
decode path stays a plain matmul + softmax.

Grouped-query attention never copies K/V in decode: the ``group`` query heads that share a
kv head are folded into the query rows. The causal prefill repeats K/V per group instead so
SDPA can take its flash / cuDNN path (``is_causal`` with no explicit mask).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from workloads.layers.kv_cache import positions_of
from workloads.layers.triton_support import has_triton


def allowed_mask(start: int | torch.Tensor, seq: int, total: int, window: int,
                 device: torch.device) -> torch.Tensor | None:
    """Bool [S, T] (True = may attend), or None when all T keys are visible to all queries."""
    if isinstance(start, int) and total == start + seq and window == 0 and seq == 1:
        return None
    query_pos = positions_of(start, seq, device)[:, None]
    key_pos = torch.arange(total, device=device)[None, :]
    allowed = key_pos <= query_pos
    if window:
        allowed = allowed & (key_pos > query_pos - window)
    return allowed


def _fold(q: torch.Tensor, kv_heads: int) -> torch.Tensor:
    batch, heads, seq, dim = q.shape
    return q.reshape(batch, kv_heads, (heads // kv_heads) * seq, dim)


def _fold_mask(mask: torch.Tensor | None, group: int) -> torch.Tensor | None:
    return None if mask is None else mask.repeat(group, 1)  # rows ordered (group, seq)


def eager_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    start: int | torch.Tensor, window: int = 0) -> torch.Tensor:
    batch, heads, seq, dim = q.shape
    kv_heads, total = keys.shape[1], keys.shape[2]
    group = heads // kv_heads
    scores = (_fold(q, kv_heads) @ keys.transpose(-1, -2)) * (1.0 / math.sqrt(dim))
    mask = _fold_mask(allowed_mask(start, seq, total, window, q.device), group)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.float().softmax(dim=-1).to(values.dtype)
    return (probs @ values).view(batch, heads, seq, dim)


def sdpa_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   start: int | torch.Tensor, window: int = 0) -> torch.Tensor:
    batch, heads, seq, dim = q.shape
    kv_heads, total = keys.shape[1], keys.shape[2]
    group = heads // kv_heads
    if isinstance(start, int) and start == 0 and total == seq and seq > 1 and window == 0:
        # Causal prefill: no explicit mask, so flash / cuDNN attention can run.
        keys = keys.repeat_interleave(group, dim=1)
        values = values.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(q, keys, values, is_causal=True)
    mask = _fold_mask(allowed_mask(start, seq, total, window, q.device), group)
    out = F.scaled_dot_product_attention(_fold(q, kv_heads), keys, values, attn_mask=mask)
    return out.view(batch, heads, seq, dim)


@lru_cache(maxsize=8)
def _compiled_flex() -> Any:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


@lru_cache(maxsize=8)
def _window_block_mask(seq: int, window: int, device: str) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    def sliding_window_causal(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        return (kv_idx <= q_idx) & (kv_idx > q_idx - window)

    return create_block_mask(sliding_window_causal, None, None, seq, seq, device=device)


def flex_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   start: int | torch.Tensor, window: int = 0) -> torch.Tensor:
    """FlexAttention with a block-sparse sliding-window mask for the prefill (blocks wholly
    outside the window are skipped, not masked); decode steps use SDPA with the same mask."""
    seq, total = q.shape[2], keys.shape[2]
    if q.device.type != "cuda" or not (isinstance(start, int) and start == 0 and total == seq
                                       and window > 0):
        return sdpa_attention(q, keys, values, start, window)
    block_mask = _window_block_mask(seq, window, str(q.device))
    return _compiled_flex()(q, keys, values, block_mask=block_mask, enable_gqa=True)


ATTENTION_KERNELS = {"eager": eager_attention, "sdpa": sdpa_attention, "flex": flex_attention}


def apply_attention(workload: Any, device: torch.device) -> str | None:
    """L3: the prefill through SDPA (flash / cuDNN on CUDA, math on CPU), or FlexAttention when
    the run has a sliding window (params ``window`` > 0) on CUDA; the one-token decode through
    the split-KV decode attention (Triton on CUDA, its torch reference on CPU), SDPA where
    CUDA has no triton or the run asks for it (param ``decode_kernel=sdpa``, for A/B runs).
    Multi-token verify steps (L6-spec) keep the prefill kernel."""
    window = int(getattr(workload, "shape", {}).get("window", 0) or 0)
    notes = []
    if window and device.type == "cuda":
        try:
            import torch.nn.attention.flex_attention  # noqa: F401
        except ImportError:
            workload.set_attention("sdpa")
            notes.append("FlexAttention unavailable in this torch: SDPA with a window mask")
        else:
            workload.set_attention("flex")
            notes.append(f"FlexAttention, sliding window {window} (block-sparse prefill)")
    else:
        workload.set_attention("sdpa")
        notes.append("SDPA prefill (math backend on CPU)" if device.type != "cuda"
                     else "SDPA prefill (flash / cuDNN)")
    requested = str(getattr(workload, "params", {}).get("decode_kernel", "split-kv"))
    if requested == "sdpa":
        notes.append("masked SDPA decode (param decode_kernel=sdpa)")
    elif device.type == "cuda" and not has_triton():
        notes.append("masked SDPA decode (no triton for the split-KV kernel)")
    else:
        workload.set_fast_decode(True)
        notes.append("decode: fused RoPE + KV write, split-KV decode attention over the cache "
                     + ("(Triton)" if device.type == "cuda" else "(torch reference on CPU)"))
    return "; ".join(notes)
