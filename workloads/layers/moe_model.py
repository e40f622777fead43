"""The MoE decoder's modules: grouped-query attention over a shared KV cache and the decoder
that stacks it with the MoE feed-forward (``moe_block``). ``workloads.moe`` holds the workload.

Each block: RMSNorm, attention with RoPE, RMSNorm, MoE feed-forward. The gpt-oss options
(explicit head_dim, attention biases, sliding window on even layers, per-head sinks) live in
the shape. The call is the dense decoder's, so ``layers.runtime.DecodeRuntime`` drives both:
``forward(tokens [B, S], start, all_logits=False)`` with ``start`` a Python int (the cache is
sliced to the valid prefix: L0) or a long tensor [1] (L2's static shapes: K/V written with
``index_copy_``, attention over the whole buffer with a position mask, so a CUDA graph (L4)
or one compiled step (L5) serves every position).

The KV cache is ``layers.kv_cache.KVCache`` (the dense model's, [B, kv_heads, capacity, D]
per layer), with a never-written slot at max_seq when the model has sinks (see
``moe_attention``: SDPA takes the sink through it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads.layers.dense_model import RMSNorm, apply_rope, rope_tables
from workloads.layers.kv_cache import KVCache, positions_of
from workloads.layers.moe_attention import KVView, eager_attention
from workloads.layers.moe_block import MoEFeedForward


class MoEAttention(nn.Module):
    """GQA with fused QKV (one weight, optional bias), RoPE, optional window and sinks."""

    def __init__(self, shape: dict[str, Any], layer: int, window: int, init: Any,
                 residual_std: float) -> None:
        super().__init__()
        hidden, self.heads, self.kv_heads = shape["hidden"], shape["heads"], shape["kv_heads"]
        self.head_dim, self.window, self.layer = shape["head_dim"], window, layer
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.w_qkv = nn.Parameter(init((q_dim + 2 * kv_dim, hidden), 1 / math.sqrt(hidden)),
                                  requires_grad=False)
        self.b_qkv = nn.Parameter(init((q_dim + 2 * kv_dim,), 0.02), requires_grad=False) \
            if shape["attn_bias"] else None
        self.w_o = nn.Parameter(init((hidden, q_dim), residual_std / math.sqrt(q_dim)),
                                requires_grad=False)
        self.sinks = nn.Parameter(init((self.heads,), 1.0), requires_grad=False) \
            if shape["sinks"] else None
        self.kernel = eager_attention  # L3 swaps in SDPA / FlexAttention

    def forward(self, x: torch.Tensor, start: int | torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor, cache: KVCache, sink_slot: int | None) -> torch.Tensor:
        batch, seq, _ = x.shape
        q_dim, kv_dim, hd = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.head_dim
        q, k, v = F.linear(x, self.w_qkv, self.b_qkv).split([q_dim, kv_dim, kv_dim], dim=-1)
        q = apply_rope(q.view(batch, seq, self.heads, hd).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(batch, seq, self.kv_heads, hd).transpose(1, 2), cos, sin)
        v = v.view(batch, seq, self.kv_heads, hd).transpose(1, 2)
        keys, values = cache.update(self.layer, start, k, v)
        view = KVView(keys, values, cache.keys[self.layer][:batch],
                      cache.values[self.layer][:batch], start, sink_slot)
        out = self.kernel(q, view, self.window, self.sinks)
        return F.linear(out.transpose(1, 2).reshape(batch, seq, q_dim), self.w_o)


class MoEDecoder(nn.Module):
    """forward(tokens [B, S], start) -> logits [B, V] of the last position (or [B, S, V])."""

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, shape: dict[str, Any], device: torch.device, dtype: torch.dtype,
                 seed: int) -> None:
        super().__init__()
        generator = torch.Generator(device=device).manual_seed(seed)

        def init(size: tuple[int, ...], std: float) -> torch.Tensor:
            tensor = torch.empty(size, device=device, dtype=dtype)
            return tensor.normal_(0.0, std, generator=generator) if std else tensor.zero_()

        residual_std = 1.0 / math.sqrt(2 * shape["layers"])
        hidden, eps = shape["hidden"], shape["norm_eps"]
        self.embed = nn.Parameter(init((shape["vocab"], hidden), 1.0), requires_grad=False)
        self.attn_norms = nn.ModuleList(RMSNorm(hidden, eps, device, dtype)
                                        for _ in range(shape["layers"]))
        self.mlp_norms = nn.ModuleList(RMSNorm(hidden, eps, device, dtype)
                                       for _ in range(shape["layers"]))
        self.attns = nn.ModuleList(
            MoEAttention(shape, index, shape["sliding_window"] if index % 2 == 0 else 0, init,
                         residual_std) for index in range(shape["layers"]))
        self.moes = nn.ModuleList(
            MoEFeedForward(hidden, shape["experts"], shape["top_k"], shape["moe_inter"],
                           shape["shared_inter"], shape["gating"], bool(shape["norm_topk"]),
                           shape["activation"], bool(shape["expert_bias"]), init, residual_std)
            for _ in range(shape["layers"]))
        self.norm = RMSNorm(hidden, eps, device, dtype)
        self.lm_head = nn.Parameter(init((shape["vocab"], hidden), 1 / math.sqrt(hidden)),
                                    requires_grad=False)
        cos, sin = rope_tables(shape["head_dim"], shape["max_seq"], shape["rope_theta"], device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # With sinks, slot max_seq of every layer's cache is never written: K = V = 0 there.
        # The capacity is rounded up to a multiple of 8 slots (the mask's rows then stay
        # 16-byte aligned, which SDPA's memory-efficient kernel wants; it copies a padded mask
        # otherwise); the extra slots are never written either and always masked.
        self.sink_slot = shape["max_seq"] if shape["sinks"] else None
        capacity = -(-(shape["max_seq"] + 1) // 8) * 8 if shape["sinks"] else shape["max_seq"]
        self.cache = KVCache(shape["layers"], shape["batch"], shape["kv_heads"], capacity,
                             shape["head_dim"], device, dtype)

    def forward(self, tokens: torch.Tensor, start: int | torch.Tensor,
                all_logits: bool = False) -> torch.Tensor:
        seq = tokens.shape[1]
        if isinstance(start, int):
            cos, sin = self.rope_cos[start:start + seq], self.rope_sin[start:start + seq]
        else:
            positions = positions_of(start, seq, tokens.device)
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        x = F.embedding(tokens, self.embed)
        for attn_norm, attn, mlp_norm, moe in zip(self.attn_norms, self.attns, self.mlp_norms,
                                                  self.moes, strict=True):
            x = x + attn(attn_norm(x), start, cos, sin, self.cache, self.sink_slot)
            x = x + moe(mlp_norm(x))
        x = self.norm(x if all_logits else x[:, -1:])
        logits = F.linear(x, self.lm_head)
        return logits if all_logits else logits[:, -1]
