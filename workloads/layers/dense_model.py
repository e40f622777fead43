"""The dense decoder's modules (Llama-3 style): RMSNorm, RoPE, GQA attention with a pluggable
kernel, SwiGLU, the decoder and its layer-skip draft. ``workloads.dense`` re-exports them and
holds the workload that measures them; the layers in this package transform them in place
(fuse projections, swap the attention kernel, the KV cache or the linears).

Two switches select fused custom ops (workloads.layers.triton_fused / triton_decode_attention;
Triton kernels on CUDA, their torch reference elsewhere):
- ``Attention.fast_decode`` (L3): a one-token decode runs RoPE + KV write as one op and the
  split-KV decode attention over the cache in place; prefill and multi-token verify keep the
  pluggable kernel.
- ``DenseDecoder.fused_norms`` (L5-gemv, L5-fp8, after lowbit.fold_norm_weights): the
  RMSNorms run inside the projections after them (their weights folded into the weights, 1/rms
  computed by the GEMV) and the residual adds inside the output projections; SwiGLU is one
  op. Per layer the decode step runs its GEMVs, RoPE + KV write, attention and SwiGLU only.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

import workloads.layers.triton_decode_attention  # noqa: F401 - registers aiperf::decode_attention
import workloads.layers.triton_fused  # noqa: F401 - registers aiperf::rope_kv_write, norms, swiglu
from workloads.layers.attention import eager_attention
from workloads.layers.kv_cache import KVCache, positions_of


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype),
                                   requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalize in fp32 (as Llama does) so bf16 runs do not lose the small variances.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_tables(head_dim: int, max_seq: int, theta: float, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [max_seq, head_dim] in fp32, rotate-half layout (Llama / HF convention)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(max_seq, device=device).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, T, head_dim]; cos/sin [T, head_dim]."""
    x32 = x.float()
    half = x32.shape[-1] // 2
    rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, linear: Any,
                 residual_linear: Any) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q_proj = linear(heads * self.head_dim, hidden)
        self.k_proj = linear(kv_heads * self.head_dim, hidden)
        self.v_proj = linear(kv_heads * self.head_dim, hidden)
        self.o_proj = residual_linear(hidden, heads * self.head_dim)
        self.qkv_proj: nn.Module | None = None  # L2 replaces q/k/v with one fused projection
        self.kernel = eager_attention  # L3 swaps in SDPA / FlexAttention
        self.fast_decode = False  # L3: fused RoPE + KV write and split-KV decode attention
        self.window = 0

    def fuse(self) -> None:
        """L2: one [q; k; v] projection (one GEMM reading x once instead of three)."""
        parts = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in parts])
        self.qkv_proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
        self.qkv_proj.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        if any(getattr(p, "bias", None) is not None for p in parts):
            # Qwen2-style checkpoints give q/k/v a bias: it must survive the fusion.
            bias = torch.cat([p.bias if getattr(p, "bias", None) is not None
                              else p.weight.new_zeros(p.weight.shape[0]) for p in parts])
            self.qkv_proj.bias = nn.Parameter(bias, requires_grad=False)
        del self.q_proj, self.k_proj, self.v_proj

    def forward(self, x: torch.Tensor, start: int | torch.Tensor, layer: int, cache: Any,
                cos: torch.Tensor, sin: torch.Tensor, rms_eps: float = 0.0,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """x normalized — or, with ``rms_eps`` (fused norms), the raw residual stream whose
        RMSNorm the projections apply; ``residual`` is added by the output projection."""
        batch, seq, _ = x.shape
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim

        def project(linear: nn.Module) -> torch.Tensor:
            return linear(x, rms_eps=rms_eps) if rms_eps else linear(x)

        if self.qkv_proj is not None:
            q, k, v = project(self.qkv_proj).split([q_dim, kv_dim, kv_dim], dim=-1)
        else:
            q, k, v = project(self.q_proj), project(self.k_proj), project(self.v_proj)
        if self.fast_decode and seq == 1:
            out = self._decode_one(q, k, v, start, layer, cache, cos, sin)
        else:
            q = q.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v.view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            keys, values = cache.update(layer, start, k, v)
            out = self.kernel(q, keys, values, start, self.window).transpose(1, 2)
        out = out.reshape(batch, seq, -1)
        if residual is None:
            return self.o_proj(out)
        return self.o_proj(out, residual=residual)

    def _decode_one(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    start: int | torch.Tensor, layer: int, cache: Any, cos: torch.Tensor,
                    sin: torch.Tensor) -> torch.Tensor:
        """One token per sequence: q/k/v [B, 1, heads * D] (views of the fused projection)."""
        batch = q.shape[0]
        positions = start if isinstance(start, torch.Tensor) else torch.full(
            (1,), start, device=q.device, dtype=torch.long)
        kv = cache.decode_view(layer)
        q = torch.ops.aiperf.rope_kv_write(
            q.view(batch, self.heads, self.head_dim),
            k.view(batch, self.kv_heads, self.head_dim),
            v.view(batch, self.kv_heads, self.head_dim), cos, sin, positions, kv.keys,
            kv.values, kv.block_table, kv.scale)
        return torch.ops.aiperf.decode_attention(q, kv.keys, kv.values, positions,
                                                 kv.block_table, kv.scale, self.window)


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, mlp: int, linear: Any, residual_linear: Any) -> None:
        super().__init__()
        self.mlp = mlp
        self.gate_proj, self.up_proj = linear(mlp, hidden), linear(mlp, hidden)
        self.down_proj = residual_linear(hidden, mlp)
        self.gate_up_proj: nn.Module | None = None  # L2: one fused [gate; up] projection
        self.fused_act = False  # L5-gemv / L5-fp8: silu(gate) * up as one op

    def fuse(self) -> None:
        weight = torch.cat([self.gate_proj.weight, self.up_proj.weight]).contiguous()
        self.gate_up_proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False,
                                      device="meta")
        self.gate_up_proj.weight = nn.Parameter(weight, requires_grad=False)
        del self.gate_proj, self.up_proj

    def forward(self, x: torch.Tensor, rms_eps: float = 0.0,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """As Attention.forward: ``rms_eps`` for a raw input, ``residual`` added at the end."""

        def project(linear: nn.Module) -> torch.Tensor:
            return linear(x, rms_eps=rms_eps) if rms_eps else linear(x)

        if self.gate_up_proj is not None:
            gate_up = project(self.gate_up_proj)
            if self.fused_act:
                hidden = torch.ops.aiperf.swiglu(gate_up)
            else:
                gate, up = gate_up.split([self.mlp, self.mlp], dim=-1)
                hidden = F.silu(gate) * up
        else:
            hidden = F.silu(project(self.gate_proj)) * project(self.up_proj)
        if residual is None:
            return self.down_proj(hidden)
        return self.down_proj(hidden, residual=residual)


class DecoderBlock(nn.Module):
    def __init__(self, shape: dict[str, Any], linear: Any, residual_linear: Any,
                 device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        hidden, eps = shape["hidden"], shape["norm_eps"]
        self.attn_norm = RMSNorm(hidden, eps, device, dtype)
        self.attn = Attention(hidden, shape["heads"], shape["kv_heads"], linear, residual_linear)
        self.mlp_norm = RMSNorm(hidden, eps, device, dtype)
        self.mlp = SwiGLU(hidden, shape["mlp"], linear, residual_linear)

    def forward(self, x: torch.Tensor, start: int | torch.Tensor, layer: int, cache: Any,
                cos: torch.Tensor, sin: torch.Tensor, fused: bool = False) -> torch.Tensor:
        # The fused path goes through the module call too, so module hooks (ncu's sampled
        # block gate) fire on it: calling forward_fused directly skipped them, and the FP8
        # stack's ncu run on an H200 failed with "the profiled sample's modules never ran".
        if fused:
            return self.forward_fused(x, start, layer, cache, cos, sin)
        x = x + self.attn(self.attn_norm(x), start, layer, cache, cos, sin)
        return x + self.mlp(self.mlp_norm(x))

    def forward_fused(self, x: torch.Tensor, start: int | torch.Tensor, layer: int,
                      cache: Any, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``forward`` with the norms' weights folded into the projections (L5-gemv / L5-fp8):
        the projections normalize their input and the output projections add the residual,
        so the step runs no norm or add kernel of its own."""
        x = self.attn(x, start, layer, cache, cos, sin, rms_eps=self.attn_norm.eps, residual=x)
        return self.mlp(x, rms_eps=self.mlp_norm.eps, residual=x)


class DenseDecoder(nn.Module):
    """forward(tokens [B, T], start) -> logits [B, V] of the last position (or [B, T, V])."""

    fused_norms = False  # L5-gemv / L5-fp8: norms and residual adds inside the GEMVs

    def __init__(self, shape: dict[str, Any], device: torch.device, dtype: torch.dtype,
                 seed: int) -> None:
        super().__init__()
        generator = torch.Generator(device=device).manual_seed(seed)
        # Scaled init keeps activations O(1) so logits have real margins (top-1 parity means
        # something); residual-output projections shrink with depth, as in GPT-2.
        residual_scale = 1.0 / math.sqrt(2 * shape["layers"])

        def linear(out_features: int, in_features: int, std: float | None = None) -> nn.Linear:
            layer = nn.Linear(in_features, out_features, bias=False, device="meta")
            weight = torch.empty(out_features, in_features, device=device, dtype=dtype)
            weight.normal_(0.0, std or 1.0 / math.sqrt(in_features), generator=generator)
            layer.weight = nn.Parameter(weight, requires_grad=False)
            return layer

        def residual_linear(out_features: int, in_features: int) -> nn.Linear:
            return linear(out_features, in_features, residual_scale / math.sqrt(in_features))

        hidden = shape["hidden"]
        embedding = torch.empty(shape["vocab"], hidden, device=device, dtype=dtype)
        self.embed = nn.Parameter(embedding.normal_(0.0, 1.0, generator=generator),
                                  requires_grad=False)
        self.blocks = nn.ModuleList(
            DecoderBlock(shape, linear, residual_linear, device, dtype)
            for _ in range(shape["layers"]))
        self.norm = RMSNorm(hidden, shape["norm_eps"], device, dtype)
        self.lm_head = linear(shape["vocab"], hidden)
        head_dim = hidden // shape["heads"]
        cos, sin = rope_tables(head_dim, shape["max_seq"], shape["rope_theta"], device)
        self.rope_cos: torch.Tensor
        self.rope_sin: torch.Tensor
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for block in self.blocks:
            cast(DecoderBlock, block).attn.window = int(shape.get("window", 0))
        self.cache: Any = KVCache(shape["layers"], shape["batch"], shape["kv_heads"],
                                  shape["max_seq"], head_dim, device, dtype)

    def forward(self, tokens: torch.Tensor, start: int | torch.Tensor,
                all_logits: bool = False) -> torch.Tensor:
        """``start`` a Python int (slices the cache) or a long tensor [1] (static shapes:
        index_copy_ into the cache, attend over max_seq with a position mask)."""
        seq = tokens.shape[1]
        if isinstance(start, int):
            cos, sin = self.rope_cos[start:start + seq], self.rope_sin[start:start + seq]
        else:
            positions = positions_of(start, seq, tokens.device)
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        x = F.embedding(tokens, self.embed)
        if self.fused_norms:
            for index, block in enumerate(self.blocks):
                x = block(x, start, index, self.cache, cos, sin, fused=True)
            logits = self.lm_head(x if all_logits else x[:, -1:], rms_eps=self.norm.eps)
        else:
            for index, block in enumerate(self.blocks):
                x = block(x, start, index, self.cache, cos, sin)
            logits = self.lm_head(self.norm(x if all_logits else x[:, -1:]))
        return logits if all_logits else logits[:, -1]


class DraftDecoder(DenseDecoder):
    """A smaller dense decoder for speculative decoding (L6-spec): the target's first
    ``layers`` blocks with its embedding, final norm and LM head (shared, not copied — a
    layer-skip draft), and a KV cache of its own."""

    def __init__(self, target: DenseDecoder, layers: int, cache: Any) -> None:
        nn.Module.__init__(self)
        self.embed = target.embed
        self.blocks = nn.ModuleList(list(target.blocks)[:layers])
        self.norm, self.lm_head = target.norm, target.lm_head
        self.fused_norms = target.fused_norms
        self.register_buffer("rope_cos", target.rope_cos, persistent=False)
        self.register_buffer("rope_sin", target.rope_sin, persistent=False)
        self.cache = cache
