"""A Llama-3-style dense decoder in plain PyTorch, and the workload that measures it.

RMSNorm, RoPE (theta from the preset; Llama-3.1's long-context frequency scaling is not
applied), grouped-query attention, SwiGLU MLP, untied LM head, a preallocated KV cache.
Weights are random from a seed and created directly on the device in the target dtype (the
8B preset is ~16 GB in bf16: no CPU detour). The attention is eager matmul + softmax on
purpose: faster attention is a later layer, measured against this baseline.

Step modes (params["mode"]): "decode" (default) = one decode step for the whole batch after a
prefill of prompt_len; "prefill" = a prefill of prompt_len tokens; "generate" = prefill plus
new_tokens-1 decode steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads import estimate
from workloads.errors import WorkbenchError
from workloads.interface import ParityOutputs, Workload

MODES = ("decode", "prefill", "generate")
SHAPE_KEYS = ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "batch", "prompt_len",
              "new_tokens", "max_seq", "dtype", "rope_theta", "norm_eps")
RUN_KEYS = ("mode",)
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


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


class KVCache:
    """Preallocated K/V per layer: [batch, kv_heads, max_seq, head_dim]."""

    def __init__(self, layers: int, batch: int, kv_heads: int, max_seq: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        shape = (batch, kv_heads, max_seq, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, linear: Any,
                 residual_linear: Any) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q_proj = linear(heads * self.head_dim, hidden)
        self.k_proj = linear(kv_heads * self.head_dim, hidden)
        self.v_proj = linear(kv_heads * self.head_dim, hidden)
        self.o_proj = residual_linear(hidden, heads * self.head_dim)

    def forward(self, x: torch.Tensor, start: int, layer: int, cache: KVCache,
                cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        q = self.q_proj(x).view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        keys, values = cache.update(layer, start, k, v)
        # GQA without copying K/V: query head h uses kv head h // group, so fold each group's
        # queries into the row dimension and broadcast one K/V per group.
        group = self.heads // self.kv_heads
        q = q.reshape(batch, self.kv_heads, group * seq, self.head_dim)
        scores = (q @ keys.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if seq > 1:
            total = keys.shape[2]
            query_pos = torch.arange(start, start + seq, device=x.device)[:, None]
            future = torch.arange(total, device=x.device)[None, :] > query_pos
            scores = scores.view(batch, self.kv_heads, group, seq, total)
            scores = scores.masked_fill(future, float("-inf")).view(
                batch, self.kv_heads, group * seq, total)
        probs = scores.float().softmax(dim=-1).to(values.dtype)
        out = (probs @ values).view(batch, self.heads, seq, self.head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, mlp: int, linear: Any, residual_linear: Any) -> None:
        super().__init__()
        self.gate_proj, self.up_proj = linear(mlp, hidden), linear(mlp, hidden)
        self.down_proj = residual_linear(hidden, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderBlock(nn.Module):
    def __init__(self, shape: dict[str, Any], linear: Any, residual_linear: Any,
                 device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        hidden, eps = shape["hidden"], shape["norm_eps"]
        self.attn_norm = RMSNorm(hidden, eps, device, dtype)
        self.attn = Attention(hidden, shape["heads"], shape["kv_heads"], linear, residual_linear)
        self.mlp_norm = RMSNorm(hidden, eps, device, dtype)
        self.mlp = SwiGLU(hidden, shape["mlp"], linear, residual_linear)

    def forward(self, x: torch.Tensor, start: int, layer: int, cache: KVCache,
                cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), start, layer, cache, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class DenseDecoder(nn.Module):
    """forward(tokens [B, T], start) -> logits [B, V] of the last position (or [B, T, V])."""

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
        self.cache = KVCache(shape["layers"], shape["batch"], shape["kv_heads"],
                             shape["max_seq"], head_dim, device, dtype)

    def forward(self, tokens: torch.Tensor, start: int, all_logits: bool = False
                ) -> torch.Tensor:
        seq = tokens.shape[1]
        cos, sin = self.rope_cos[start:start + seq], self.rope_sin[start:start + seq]
        x = F.embedding(tokens, self.embed)
        for index, block in enumerate(self.blocks):
            x = block(x, start, index, self.cache, cos, sin)
        x = self.norm(x if all_logits else x[:, -1:])
        logits = self.lm_head(x)
        return logits if all_logits else logits[:, -1]


def resolve_shape(params: dict[str, Any]) -> dict[str, Any]:
    """Validate merged preset+spec params; return the model shape. WorkbenchError if bad."""
    unknown = sorted(set(params) - set(SHAPE_KEYS) - set(RUN_KEYS))
    if unknown:
        raise WorkbenchError(f"unknown dense params: {', '.join(unknown)}",
                             f"known: {', '.join(SHAPE_KEYS + RUN_KEYS)}")
    missing = [k for k in SHAPE_KEYS if k not in params]
    if missing:
        raise WorkbenchError(f"missing dense params: {', '.join(missing)}")
    shape = {k: params[k] for k in SHAPE_KEYS}
    for key in ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "batch",
                "prompt_len", "new_tokens", "max_seq"):
        if isinstance(shape[key], bool) or not isinstance(shape[key], int) or shape[key] < 1:
            raise WorkbenchError(f"dense param {key} must be a positive integer, "
                                 f"got {shape[key]!r}")
    for key in ("rope_theta", "norm_eps"):
        if isinstance(shape[key], bool) or not isinstance(shape[key], int | float) \
                or shape[key] <= 0:
            raise WorkbenchError(f"dense param {key} must be a positive number, "
                                 f"got {shape[key]!r}")
    estimate.dtype_bytes(shape["dtype"])
    if shape["hidden"] % shape["heads"] or (shape["hidden"] // shape["heads"]) % 2:
        raise WorkbenchError(f"hidden ({shape['hidden']}) must split into {shape['heads']} "
                             "heads of an even head_dim (RoPE rotates pairs)")
    if shape["heads"] % shape["kv_heads"]:
        raise WorkbenchError(f"heads ({shape['heads']}) must be a multiple of kv_heads "
                             f"({shape['kv_heads']}) for grouped-query attention")
    if shape["prompt_len"] + shape["new_tokens"] > shape["max_seq"]:
        raise WorkbenchError(
            f"prompt_len + new_tokens ({shape['prompt_len'] + shape['new_tokens']}) exceeds "
            f"max_seq ({shape['max_seq']})", "raise max_seq or shorten the run")
    return shape


class DenseWorkload(Workload):
    name = "dense"
    generates = True

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        self.mode = params.get("mode", "decode")
        if self.mode not in MODES:
            raise WorkbenchError(f"unknown dense mode {self.mode!r}",
                                 f"choose one of: {', '.join(MODES)}")
        self.shape = resolve_shape(params)
        self.step_name = self.mode
        self.device, self.dtype = device, dtype
        self.compute_precision = PRECISION_OF_DTYPE[dtype]
        self.model = DenseDecoder(self.shape, device, dtype, seed).eval()
        self._next_token: torch.Tensor | None = None
        self._prompt: torch.Tensor | None = None

    def make_inputs(self, seed: int) -> torch.Tensor:
        # Drawn on the CPU so every device sees the same prompt for a seed.
        generator = torch.Generator().manual_seed(seed)
        prompt = torch.randint(0, self.shape["vocab"],
                               (self.shape["batch"], self.shape["prompt_len"]),
                               generator=generator)
        return prompt.to(self.device)

    def parity_outputs(self, inputs: torch.Tensor, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        assert self.model is not None
        steps_logits, steps_tokens = [], []
        logits = self.model(inputs, 0)
        position = inputs.shape[1]
        for index in range(self.shape["new_tokens"]):
            steps_logits.append(logits.float())
            token = logits.argmax(-1) if forced_tokens is None else forced_tokens[index]
            steps_tokens.append(token)
            if index + 1 < self.shape["new_tokens"]:
                logits = self.model(token[:, None], position)
                position += 1
        return ParityOutputs(torch.stack(steps_logits), torch.stack(steps_tokens))

    def prepare(self, inputs: torch.Tensor) -> None:
        assert self.model is not None
        self._prompt = inputs
        # Decode steps start from a cache filled by one prefill; reset() rewinds to its end.
        self._next_token = self.model(inputs, 0).argmax(-1)[:, None]

    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        if self.mode == "prefill":
            return self.model(inputs, 0)
        if self.mode == "generate":
            self.prefill(inputs)
            self.decode_rest()
            return self._next_token  # type: ignore[return-value]  # set by prefill
        if self._next_token is None:
            raise RuntimeError("decode step before prepare(): the KV cache is empty")
        # The cache beyond prompt_len is overwritten, so every repeat decodes the same position.
        return self.model(self._next_token, self.shape["prompt_len"])

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        self._next_token = self.model(inputs, 0).argmax(-1)[:, None]
        return self._next_token

    def decode_rest(self) -> int:
        assert self.model is not None and self._next_token is not None
        position, token = self.shape["prompt_len"], self._next_token
        for _ in range(self.shape["new_tokens"] - 1):
            token = self.model(token, position).argmax(-1)[:, None]
            position += 1
        self._next_token = token
        return self.shape["new_tokens"] - 1

    def prefill_tokens(self) -> int | None:
        return self.shape["batch"] * self.shape["prompt_len"]

    def tokens_per_step(self) -> int:
        batch = self.shape["batch"]
        return {"decode": batch, "prefill": batch * self.shape["prompt_len"],
                "generate": batch * self.shape["new_tokens"]}[self.mode]

    def flops_per_step(self) -> float | None:
        prompt_len = self.shape["prompt_len"]
        if self.mode == "decode":
            return float(estimate.decode_flops(self.shape, prompt_len + 1))
        if self.mode == "prefill":
            return float(estimate.prefill_flops(self.shape, prompt_len))
        decodes = range(prompt_len + 1, prompt_len + self.shape["new_tokens"])
        return float(estimate.prefill_flops(self.shape, prompt_len)
                     + sum(estimate.decode_flops(self.shape, ctx) for ctx in decodes))

    def bytes_per_step(self) -> float | None:
        prompt_len = self.shape["prompt_len"]
        if self.mode == "decode":
            return float(estimate.decode_bytes(self.shape, prompt_len + 1))
        if self.mode == "prefill":
            return float(estimate.prefill_bytes(self.shape, prompt_len))
        decodes = range(prompt_len + 1, prompt_len + self.shape["new_tokens"])
        return float(estimate.prefill_bytes(self.shape, prompt_len)
                     + sum(estimate.decode_bytes(self.shape, ctx) for ctx in decodes))

    def extra(self) -> dict[str, Any]:
        counts = estimate.dense_param_counts(self.shape)
        return {"shape": dict(self.shape), "mode": self.mode, "params": counts.total,
                "memory_estimate": estimate.estimate_dense_memory(self.shape).to_dict()}


def create_workload() -> Workload:
    return DenseWorkload()
