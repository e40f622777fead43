"""A DeepSeek-R1-style mixture-of-experts decoder in plain PyTorch, and the workload measuring it.

Each block: RMSNorm, grouped-query attention with RoPE and a preallocated KV cache, RMSNorm,
then a MoE feed-forward (``workloads.layers.moe_block``): E routed experts, top-k, softmax or
sigmoid gating with optional renormalization of the k weights, plus a shared expert. Multi-head
latent attention and the first dense layers of DeepSeek are not modelled: the MoE half is
what this workload is for. Weights are random from a seed, made on the device in the dtype.

The same model carries the gpt-oss options (``workloads.gptoss``): an explicit head_dim,
attention biases, sliding-window attention on every other layer (even layers, as gpt-oss),
per-head attention sinks (a learned logit in the softmax denominator), softmax over the top-k
logits, clamped SwiGLU experts with biases, no shared expert.

The router of the L0 parity reference tallies every token it routes; ``extra()`` then reports
router health (``workloads.router_health``) into result.json ``extra.router``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads.errors import WorkbenchError
from workloads.interface import (
    ParityOutputs,
    ProfileSample,
    Workload,
    greedy_parity,
    prompt_tokens,
)
from workloads.layers.dense_model import RMSNorm, apply_rope  # the same math as dense
from workloads.layers.moe_block import GATINGS, MoEFeedForward, moe_blocks
from workloads.router_health import summarize

MODES = ("decode", "prefill")
REQUIRED = ("hidden", "layers", "heads", "kv_heads", "vocab", "batch", "prompt_len",
            "new_tokens", "max_seq", "dtype", "experts", "top_k", "moe_inter")
DEFAULTS: dict[str, Any] = {
    "head_dim": None, "rope_theta": 10000.0, "norm_eps": 1e-6, "shared_inter": 0,
    "gating": "softmax", "norm_topk": True, "activation": "swiglu", "expert_bias": False,
    "attn_bias": False, "sliding_window": 0, "sinks": False, "aux_loss_coef": 0.001,
}
POSITIVE = ("hidden", "layers", "heads", "kv_heads", "vocab", "batch", "prompt_len",
            "new_tokens", "max_seq", "experts", "top_k", "moe_inter")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class Attention(nn.Module):
    """GQA over a preallocated cache [B, kv_heads, max_seq, head_dim]; eager math on purpose."""

    def __init__(self, shape: dict[str, Any], window: int, init: Any, residual_std: float,
                 device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        hidden, self.heads, self.kv_heads = shape["hidden"], shape["heads"], shape["kv_heads"]
        self.head_dim, self.window = shape["head_dim"], window
        q_dim, kv_dim = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.w_qkv = nn.Parameter(init((q_dim + 2 * kv_dim, hidden), 1 / math.sqrt(hidden)),
                                  requires_grad=False)
        self.b_qkv = nn.Parameter(init((q_dim + 2 * kv_dim,), 0.02), requires_grad=False) \
            if shape["attn_bias"] else None
        self.w_o = nn.Parameter(init((hidden, q_dim), residual_std / math.sqrt(q_dim)),
                                requires_grad=False)
        self.sinks = nn.Parameter(init((self.heads,), 1.0), requires_grad=False) \
            if shape["sinks"] else None
        cache = (shape["batch"], self.kv_heads, shape["max_seq"], self.head_dim)
        self.keys = torch.zeros(cache, device=device, dtype=dtype)
        self.values = torch.zeros(cache, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, start: int, cos: torch.Tensor, sin: torch.Tensor
                ) -> torch.Tensor:
        batch, seq, _ = x.shape
        q_dim, kv_dim, hd = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.head_dim
        q, k, v = F.linear(x, self.w_qkv, self.b_qkv).split([q_dim, kv_dim, kv_dim], dim=-1)
        q = apply_rope(q.view(batch, seq, self.heads, hd).transpose(1, 2), cos, sin)
        k = apply_rope(k.view(batch, seq, self.kv_heads, hd).transpose(1, 2), cos, sin)
        end = start + seq
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v.view(batch, seq, self.kv_heads, hd).transpose(1, 2)
        keys, values = self.keys[:, :, :end], self.values[:, :, :end]
        group = self.heads // self.kv_heads
        # Fold each KV group's query heads into rows so one K/V serves the group (no copies).
        scores = (q.reshape(batch, self.kv_heads, group * seq, hd) @ keys.transpose(-1, -2))
        scores = scores.float().view(batch, self.kv_heads, group, seq, end) / math.sqrt(hd)
        query_pos = torch.arange(start, end, device=x.device)[:, None]
        key_pos = torch.arange(end, device=x.device)[None, :]
        masked = key_pos > query_pos
        if self.window:
            masked = masked | (key_pos <= query_pos - self.window)
        scores = scores.masked_fill(masked, float("-inf"))
        if self.sinks is not None:
            # A per-head logit that joins the softmax denominator and is then dropped.
            sink = self.sinks.float().view(1, self.kv_heads, group, 1, 1)
            scores = torch.cat([scores, sink.expand(batch, -1, -1, seq, 1)], dim=-1)
            probs = scores.softmax(dim=-1)[..., :-1]
        else:
            probs = scores.softmax(dim=-1)
        probs = probs.to(values.dtype).reshape(batch, self.kv_heads, group * seq, end)
        out = (probs @ values).view(batch, self.heads, seq, hd).transpose(1, 2)
        return F.linear(out.reshape(batch, seq, q_dim), self.w_o)


class MoEDecoder(nn.Module):
    """forward(tokens [B, T], start) -> logits [B, V] of the last position."""

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
            Attention(shape, shape["sliding_window"] if index % 2 == 0 else 0, init,
                      residual_std, device, dtype) for index in range(shape["layers"]))
        self.moes = nn.ModuleList(
            MoEFeedForward(hidden, shape["experts"], shape["top_k"], shape["moe_inter"],
                           shape["shared_inter"], shape["gating"], bool(shape["norm_topk"]),
                           shape["activation"], bool(shape["expert_bias"]), init, residual_std)
            for _ in range(shape["layers"]))
        self.norm = RMSNorm(hidden, eps, device, dtype)
        self.lm_head = nn.Parameter(init((shape["vocab"], hidden), 1 / math.sqrt(hidden)),
                                    requires_grad=False)
        hd = shape["head_dim"]
        inv_freq = 1.0 / shape["rope_theta"] ** (torch.arange(0, hd, 2, device=device).float() / hd)
        angles = torch.outer(torch.arange(shape["max_seq"], device=device).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.rope_cos, self.rope_sin = angles.cos(), angles.sin()

    def forward(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        seq = tokens.shape[1]
        cos, sin = self.rope_cos[start:start + seq], self.rope_sin[start:start + seq]
        x = F.embedding(tokens, self.embed)
        for attn_norm, attn, mlp_norm, moe in zip(self.attn_norms, self.attns, self.mlp_norms,
                                                  self.moes, strict=True):
            x = x + attn(attn_norm(x), start, cos, sin)
            x = x + moe(mlp_norm(x))
        return F.linear(self.norm(x[:, -1]), self.lm_head)


def resolve_shape(params: dict[str, Any], workload: str = "moe") -> dict[str, Any]:
    """Validate merged preset+spec params into a model shape; WorkbenchError if bad."""
    known = set(REQUIRED) | set(DEFAULTS) | {"mode"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise WorkbenchError(f"unknown {workload} params: {', '.join(unknown)}",
                             f"known: {', '.join(sorted(known))}")
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise WorkbenchError(f"missing {workload} params: {', '.join(missing)}")
    shape = {**DEFAULTS, **{k: v for k, v in params.items() if k != "mode"}}
    for key in POSITIVE:
        if isinstance(shape[key], bool) or not isinstance(shape[key], int) or shape[key] < 1:
            raise WorkbenchError(f"{workload} param {key} must be a positive integer, "
                                 f"got {shape[key]!r}")
    if shape["dtype"] not in DTYPES:
        raise WorkbenchError(f"unsupported dtype {shape['dtype']!r}",
                             f"choose one of: {', '.join(DTYPES)}")
    if shape["gating"] not in GATINGS:
        raise WorkbenchError(f"unknown gating {shape['gating']!r}",
                             f"choose one of: {', '.join(GATINGS)}")
    if shape["activation"] not in ("swiglu", "gptoss"):
        raise WorkbenchError(f"unknown expert activation {shape['activation']!r}",
                             "choose swiglu or gptoss")
    if shape["top_k"] > shape["experts"]:
        raise WorkbenchError(f"top_k ({shape['top_k']}) exceeds experts ({shape['experts']})")
    if shape["head_dim"] is None:
        if shape["hidden"] % shape["heads"]:
            raise WorkbenchError(f"hidden ({shape['hidden']}) does not split into "
                                 f"{shape['heads']} heads", "set head_dim explicitly")
        shape["head_dim"] = shape["hidden"] // shape["heads"]
    if shape["head_dim"] % 2 or shape["heads"] % shape["kv_heads"]:
        raise WorkbenchError("head_dim must be even and heads a multiple of kv_heads, got "
                             f"head_dim {shape['head_dim']}, {shape['heads']}/{shape['kv_heads']}")
    if shape["prompt_len"] + shape["new_tokens"] > shape["max_seq"]:
        raise WorkbenchError(
            f"prompt_len + new_tokens ({shape['prompt_len'] + shape['new_tokens']}) exceeds "
            f"max_seq ({shape['max_seq']})", "raise max_seq or shorten the run")
    return shape


def param_counts(shape: dict[str, Any]) -> dict[str, int]:
    """Parameters in total and touched per token (the top-k experts, not all of them)."""
    hidden, hd, layers = shape["hidden"], shape["head_dim"], shape["layers"]
    attn = hidden * hd * (2 * shape["heads"] + 2 * shape["kv_heads"])
    expert = 3 * hidden * shape["moe_inter"]
    shared = 3 * hidden * shape["shared_inter"]
    router = hidden * shape["experts"]
    per_layer = attn + router + shared + expert * shape["experts"]
    active = attn + router + shared + expert * shape["top_k"]
    embed = 2 * shape["vocab"] * hidden
    return {"total": layers * per_layer + embed, "experts": layers * expert * shape["experts"],
            "active_per_token": layers * active + shape["vocab"] * hidden,
            "expert": expert, "attention_per_layer": attn, "shared_per_layer": shared,
            "router_per_layer": router}


class MoEWorkload(Workload):
    name = "moe"
    generates = True

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        self.mode = params.get("mode", "decode")
        if self.mode not in MODES:
            raise WorkbenchError(f"unknown {self.name} mode {self.mode!r}",
                                 f"choose one of: {', '.join(MODES)}")
        self.shape = resolve_shape(params, self.name)
        self.step_name = self.mode
        self.device, self.dtype = device, dtype
        self.compute_precision = PRECISION_OF_DTYPE[dtype]
        self.model = MoEDecoder(self.shape, device, dtype, seed).eval()
        self._next_token: torch.Tensor | None = None
        self._router: dict[str, Any] | None = None
        self._routes: list[list[torch.Tensor]] = []
        self._routing_parity: dict[str, Any] | None = None

    def make_inputs(self, seed: int) -> torch.Tensor:
        return prompt_tokens(self.shape["vocab"], self.shape["batch"], self.shape["prompt_len"],
                             seed, self.device)

    def parity_outputs(self, inputs: torch.Tensor, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        assert self.model is not None
        # The reference (no forced tokens) is the L0 run: its routing is the router health.
        collect = forced_tokens is None and self._router is None
        blocks = moe_blocks(self.model)
        routes = self._routes if forced_tokens is not None else None
        for index, block in enumerate(blocks):
            block.collect, block.tally = collect, None
            block.recorded = [] if collect else None
            block.forced = list(routes[index]) if routes else None
            block.flips = None
        try:
            outputs = greedy_parity(self.model, inputs, self.shape["new_tokens"],
                                    forced_tokens)
        finally:
            for block in blocks:
                block.collect, block.forced = False, None
        if collect:
            self._routes = [block.recorded or [] for block in blocks]
            for block in blocks:
                block.recorded = None
            self._router = summarize([b.tally for b in blocks if b.tally is not None],
                                     self.shape["top_k"], self.shape["gating"],
                                     float(self.shape["aux_loss_coef"]))
        if routes:
            flips = [b.flips for b in blocks if b.flips is not None]
            routed = sum(r.shape[0] for layer in routes for r in layer)
            self._routing_parity = {
                "replayed": "the candidate used the reference's experts (weights its own)",
                "token_layer_choices": routed,
                "flipped": int(sum(flips)) if flips else 0}  # type: ignore[arg-type]
        return outputs

    def prepare(self, inputs: torch.Tensor) -> None:
        assert self.model is not None
        self._next_token = self.model(inputs, 0).argmax(-1)[:, None]

    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        if self.mode == "prefill":
            return self.model(inputs, 0)
        if self._next_token is None:
            raise RuntimeError("decode step before prepare(): the KV cache is empty")
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
        return batch if self.mode == "decode" else batch * self.shape["prompt_len"]

    def _attention_context(self, ctx: int) -> int:
        """Keys attended, summed over layers (sliding layers see at most the window)."""
        window = self.shape["sliding_window"]
        return sum(min(ctx, window) if window and index % 2 == 0 else ctx
                   for index in range(self.shape["layers"]))

    def flops_per_step(self) -> float | None:
        s, counts = self.shape, param_counts(self.shape)
        attn = 4 * s["heads"] * s["head_dim"]
        if self.mode == "decode":
            ctx = s["prompt_len"] + 1
            return float(s["batch"] * (2 * counts["active_per_token"]
                                       + attn * self._attention_context(ctx)))
        tokens = s["batch"] * s["prompt_len"]
        mean_ctx = (s["prompt_len"] + 1) / 2  # causal: the average query sees half the prompt
        return float(tokens * 2 * counts["active_per_token"]
                     + s["batch"] * s["prompt_len"] * attn * self._attention_context(
                         int(mean_ctx)))

    def bytes_per_step(self) -> float | None:
        if self.mode != "decode":
            return None
        s, counts = self.shape, param_counts(self.shape)
        size = torch.finfo(self.dtype).bits // 8
        # Expected distinct experts touched by B tokens routing uniformly at random.
        touched = s["experts"] * (1 - (1 - s["top_k"] / s["experts"]) ** s["batch"])
        per_layer = (counts["attention_per_layer"] + counts["router_per_layer"]
                     + counts["shared_per_layer"] + touched * counts["expert"])
        kv = 2 * s["batch"] * s["kv_heads"] * s["head_dim"] * self._attention_context(
            s["prompt_len"] + 1)
        return float(size * (s["layers"] * per_layer + s["vocab"] * s["hidden"] + kv))

    def profile_sample(self) -> ProfileSample | None:
        """ncu's sample: the last decoder layer (attention and MoE feed-forward; a layer where
        alternating attention kinds exist, as in gpt-oss, brings the one before it too)."""
        model = self.model
        if not isinstance(model, MoEDecoder) or len(model.attns) < 4:
            return None
        windows = {getattr(a, "window", 0) for a in model.attns}
        count = 2 if len(windows) > 1 else 1
        total = len(model.attns)
        spans: list[tuple[nn.Module, nn.Module]] = []
        for index in range(total - count, total):
            spans += [(model.attn_norms[index], model.attns[index]),
                      (model.mlp_norms[index], model.moes[index])]
        return ProfileSample(spans=spans, blocks_profiled=count, blocks_total=total,
                             what=f"decoder layer{'s' if count > 1 else ''} "
                                  f"{', '.join(str(i) for i in range(total - count, total))} "
                                  f"of {total}")

    def extra(self) -> dict[str, Any]:
        counts = param_counts(self.shape)
        size = torch.finfo(self.dtype).bits // 8
        facts: dict[str, Any] = {"shape": dict(self.shape), "mode": self.mode,
                                 "params": counts["total"],
                                 "active_params_per_token": counts["active_per_token"],
                                 "weights_bytes": counts["total"] * size}
        blocks = moe_blocks(self.model)
        if blocks:
            facts["moe_impl"] = {"dispatch": blocks[0].dispatch, "backend": blocks[0].backend,
                                 "fp8": blocks[0].weights.w13_q is not None}
        if self._router is not None:
            facts["router"] = self._router
        if self._routing_parity is not None:
            facts["routing_parity"] = self._routing_parity
        return facts


def create_workload() -> Workload:
    return MoEWorkload()
