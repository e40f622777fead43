"""Attention for the MoE decoders (``workloads.moe``, ``workloads.gptoss``): grouped-query
attention over the KV cache with an optional sliding window and optional per-head sinks.

A sink (gpt-oss) is a learned logit per query head that joins the softmax denominator and
has no value: ``p_j = exp(s_j) / (sum_i exp(s_i) + exp(sink))``. Every kernel below computes
that same function; L3 picks which one runs (``MoEWorkload.set_attention``):

  eager  (L0) matmul + softmax in fp32, the sink as one more logit column. At an int position
         the keys are the exact valid prefix; at a tensor position (L2's static cache) the
         whole buffer with a position mask. Long prefills run in query chunks, so the fp32
         scores stay under EAGER_SCORE_BYTES (gpt-oss 20b at 8,192 tokens would be 17 GB per
         layer in one piece); each row's math is the same either way.
  sdpa   (L3) scaled_dot_product_attention. A causal prefill with neither window nor sinks
         takes ``is_causal`` (flash / cuDNN). Everything else attends over the cache buffer
         with a mask; sinks ride in the mask through the cache's *sink slot*: one extra
         K/V slot past max_seq that is never written (K = 0, V = 0), so its score is exactly
         the mask's bias there, set to the head's sink logit, and its value adds nothing.
  flex   (L3, CUDA prefill with a window or sinks) FlexAttention with a block-sparse causal /
         sliding-window mask (blocks wholly outside the window are skipped); sinks from its
         log-sum-exp: ``out * sigmoid(lse - sink)``. Decode steps take the sdpa path.

Hook for a decode-attention kernel (the dense model's split-KV kernel, say): a kernel is any
``fn(q, kv: KVView, window, sinks) -> out`` registered in MOE_ATTENTION_KERNELS; ``KVView``
carries the cache buffers (read in place), the position (int or device tensor) and the sink
slot. A split-KV kernel supports sinks by adding ``exp(sink - m)`` to its combine's
denominator (the sink is one more split with logit ``sink`` and value zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from workloads.layers.kv_cache import positions_of

EAGER_SCORE_BYTES = 1 << 29  # fp32 scores held at once by the eager kernel (512 MiB)


@dataclass
class KVView:
    """One layer's cache as the attention kernels see it."""

    keys: torch.Tensor  # [B, kv_heads, T, D]: the valid prefix (int start) or the whole buffer
    values: torch.Tensor
    k_buf: torch.Tensor  # [B, kv_heads, capacity, D]: the whole buffer, sink slot included
    v_buf: torch.Tensor
    start: int | torch.Tensor  # position of the first query (a long tensor [1] when static)
    sink_slot: int | None  # index of the never-written slot in k_buf/v_buf, None without sinks


def _fold(q: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """[B, H, S, D] -> [B, kv_heads, group * S, D]: a KV group's query heads become rows."""
    batch, heads, seq, dim = q.shape
    return q.reshape(batch, kv_heads, (heads // kv_heads) * seq, dim)


def _visible(start: int | torch.Tensor, seq: int, total: int, window: int,
             device: torch.device) -> torch.Tensor:
    """Bool [S, T]: key slot j is visible to the query at position p (j <= p, j > p - window).
    The sink slot (index max_seq, past every position) is never visible as a key."""
    query_pos = positions_of(start, seq, device)[:, None]
    key_pos = torch.arange(total, device=device)[None, :]
    visible = key_pos <= query_pos
    if window:
        visible = visible & (key_pos > query_pos - window)
    return visible


def eager_attention(q: torch.Tensor, kv: KVView, window: int, sinks: torch.Tensor | None
                    ) -> torch.Tensor:
    batch, heads, seq, dim = q.shape
    keys, values = kv.keys, kv.values
    kv_heads, total = keys.shape[1], keys.shape[2]
    group = heads // kv_heads
    chunk = max(1, EAGER_SCORE_BYTES // max(1, batch * heads * total * 4))
    parts = []
    for lo in range(0, seq, chunk):
        hi = min(seq, lo + chunk)
        rows = hi - lo
        folded = q[:, :, lo:hi].reshape(batch, kv_heads, group * rows, dim)
        scores = (folded @ keys.transpose(-1, -2)).float()
        scores = scores.view(batch, kv_heads, group, rows, total) / math.sqrt(dim)
        start = kv.start + lo if lo else kv.start
        masked = ~_visible(start, rows, total, window, q.device)
        scores = scores.masked_fill(masked, float("-inf"))
        if sinks is not None:
            sink = sinks.float().view(1, kv_heads, group, 1, 1)
            scores = torch.cat([scores, sink.expand(batch, -1, -1, rows, 1)], dim=-1)
            probs = scores.softmax(dim=-1)[..., :-1]
        else:
            probs = scores.softmax(dim=-1)
        probs = probs.to(values.dtype).reshape(batch, kv_heads, group * rows, total)
        parts.append((probs @ values).view(batch, heads, rows, dim))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


def sdpa_attention(q: torch.Tensor, kv: KVView, window: int, sinks: torch.Tensor | None
                   ) -> torch.Tensor:
    batch, heads, seq, dim = q.shape
    kv_heads = kv.keys.shape[1]
    group = heads // kv_heads
    if isinstance(kv.start, int) and kv.start == 0 and kv.keys.shape[2] == seq and seq > 1 \
            and not window and sinks is None:
        # Causal prefill: no explicit mask, so flash / cuDNN attention can run.
        keys = kv.keys.repeat_interleave(group, dim=1)
        values = kv.values.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(q, keys, values, is_causal=True)
    total = kv.k_buf.shape[2]
    visible = _visible(kv.start, seq, total, window, q.device)
    if sinks is None:
        mask = visible.repeat(group, 1)  # rows ordered (group, seq) as _fold orders them
    else:
        if kv.sink_slot is None:
            raise ValueError("attention sinks need a cache with a sink slot")
        if kv_heads * group * seq * total * q.element_size() > EAGER_SCORE_BYTES:
            return eager_attention(q, kv, window, sinks)  # the mask alone would be too big
        bias = torch.zeros(visible.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~visible, float("-inf"))
        is_sink = torch.arange(total, device=q.device) == kv.sink_slot
        sink_bias = sinks.to(q.dtype).view(kv_heads, group, 1, 1)
        mask = torch.where(is_sink, sink_bias, bias).reshape(1, kv_heads, group * seq, total)
    out = F.scaled_dot_product_attention(_fold(q, kv_heads), kv.k_buf, kv.v_buf,
                                         attn_mask=mask)
    return out.view(batch, heads, seq, dim)


@lru_cache(maxsize=4)
def _compiled_flex() -> Any:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


@lru_cache(maxsize=16)
def _block_mask(seq: int, window: int, device: str) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    def causal(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        return kv_idx <= q_idx

    def sliding(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        return (kv_idx <= q_idx) & (kv_idx > q_idx - window)

    return create_block_mask(sliding if window else causal, None, None, seq, seq,
                             device=device)


def flex_prefill(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, window: int,
                 sinks: torch.Tensor | None, compiled: bool = True) -> torch.Tensor:
    """A causal (sliding-window) prefill through FlexAttention, sinks from its log-sum-exp.
    ``compiled=False`` runs FlexAttention's eager reference (CPU tests)."""
    from torch.nn.attention import flex_attention as flex_module

    flex = _compiled_flex() if compiled else flex_module.flex_attention
    block_mask = _block_mask(q.shape[2], window, str(q.device))
    if sinks is None:
        return flex(q, keys, values, block_mask=block_mask, enable_gqa=True)
    aux_request = getattr(flex_module, "AuxRequest", None)
    if aux_request is not None:  # torch >= 2.9; return_lse is deprecated there
        out, aux = flex(q, keys, values, block_mask=block_mask, enable_gqa=True,
                        return_aux=aux_request(lse=True))
        lse = aux.lse
    else:
        out, lse = flex(q, keys, values, block_mask=block_mask, enable_gqa=True,
                        return_lse=True)
    keep = torch.sigmoid(lse.float() - sinks.float().view(1, -1, 1))  # share not taken by sink
    return (out.float() * keep.unsqueeze(-1)).to(q.dtype)


def flex_attention(q: torch.Tensor, kv: KVView, window: int, sinks: torch.Tensor | None
                   ) -> torch.Tensor:
    seq = q.shape[2]
    prefill = isinstance(kv.start, int) and kv.start == 0 and kv.keys.shape[2] == seq
    if q.device.type != "cuda" or not prefill or (not window and sinks is None):
        return sdpa_attention(q, kv, window, sinks)
    return flex_prefill(q, kv.keys, kv.values, window, sinks)


MOE_ATTENTION_KERNELS = {"eager": eager_attention, "sdpa": sdpa_attention,
                         "flex": flex_attention}


def flex_available() -> bool:
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def apply_moe_attention(workload: Any, device: torch.device) -> str | None:
    """L3 for the MoE decoders: FlexAttention for a prefill with a window or sinks on CUDA,
    SDPA everywhere else (flash / cuDNN for a plain causal prefill, a masked call for decode)."""
    shape = workload.shape
    window, sinks = int(shape.get("sliding_window") or 0), bool(shape.get("sinks"))
    decode = "masked SDPA decode over the static buffer" + (
        " (sinks through the cache's zero K/V slot)" if sinks else "")
    if device.type == "cuda" and (window or sinks) and flex_available():
        workload.set_attention("flex")
        what = " and ".join(p for p in (f"sliding window {window}" if window else "",
                                         "sinks from its log-sum-exp" if sinks else "") if p)
        return f"FlexAttention prefill ({what}, block-sparse); {decode}"
    workload.set_attention("sdpa")
    if device.type != "cuda":
        return f"SDPA math backend on CPU; {decode}"
    if window or sinks:
        return f"SDPA with a mask (FlexAttention unavailable in this torch); {decode}"
    return f"SDPA: flash / cuDNN for the causal prefill; {decode}"
