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

The modules live in ``workloads.layers.moe_model``; every call goes through
``layers.runtime.DecodeRuntime`` (eager / static / compiled / graphed), as the dense workload's
do, so the dense layers L2-L5 apply here too (``workloads.layers.moe_apply``). Run options
(RUN_DEFAULTS) sit beside the shape params: compile modes and ``unmet_layers`` ("skip" is what
the ladder sets).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.errors import WorkbenchError
from workloads.interface import (
    ParityOutputs,
    ProfileSample,
    Workload,
    greedy_parity,
    prompt_tokens,
)
from workloads.layers.moe_attention import MOE_ATTENTION_KERNELS
from workloads.layers.moe_block import GATINGS, moe_blocks
from workloads.layers.moe_model import MoEAttention, MoEDecoder  # noqa: F401 - re-exported
from workloads.layers.runtime import DecodeRuntime
from workloads.router_health import summarize

MODES = ("decode", "prefill")
REQUIRED = ("hidden", "layers", "heads", "kv_heads", "vocab", "batch", "prompt_len",
            "new_tokens", "max_seq", "dtype", "experts", "top_k", "moe_inter")
DEFAULTS: dict[str, Any] = {
    "head_dim": None, "rope_theta": 10000.0, "norm_eps": 1e-6, "shared_inter": 0,
    "gating": "softmax", "norm_topk": True, "activation": "swiglu", "expert_bias": False,
    "attn_bias": False, "sliding_window": 0, "sinks": False, "aux_loss_coef": 0.001,
}
# Run options (not part of the model's shape); layers read theirs from here.
RUN_DEFAULTS: dict[str, Any] = {
    "mode": "decode",
    "unmet_layers": "fail",  # "skip": record a layer whose requirement is unmet, run the rest
    # L5 decode step: "default" — the experts are grouped GEMMs or Triton custom ops either
    # way, and max-autotune's GEMM search would add minutes to every compiled MoE run.
    "compile_mode": "default",
    "compile_prefill_mode": "default",  # L5 prefill (compiled in prefill mode only)
}
POSITIVE = ("hidden", "layers", "heads", "kv_heads", "vocab", "batch", "prompt_len",
            "new_tokens", "max_seq", "experts", "top_k", "moe_inter")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_shape(params: dict[str, Any], workload: str = "moe") -> dict[str, Any]:
    """Validate merged preset+spec params into a model shape; WorkbenchError if bad."""
    known = set(REQUIRED) | set(DEFAULTS) | set(RUN_DEFAULTS)
    unknown = sorted(set(params) - known)
    if unknown:
        raise WorkbenchError(f"unknown {workload} params: {', '.join(unknown)}",
                             f"known: {', '.join(sorted(known))}")
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise WorkbenchError(f"missing {workload} params: {', '.join(missing)}")
    if params.get("unmet_layers", "fail") not in ("fail", "skip"):
        raise WorkbenchError(f"{workload} param unmet_layers must be 'fail' or 'skip'")
    shape = {**DEFAULTS, **{k: v for k, v in params.items() if k not in RUN_DEFAULTS}}
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
        self.params = {k: params.get(k, v) for k, v in RUN_DEFAULTS.items()}
        self.skip_unmet_layers = self.params["unmet_layers"] == "skip"
        self.step_name = self.mode
        self.device, self.dtype = device, dtype
        self.compute_precision = PRECISION_OF_DTYPE[dtype]
        self.model = MoEDecoder(self.shape, device, dtype, seed).eval()
        self.runtime = DecodeRuntime(self.model, device)
        self._next_token: torch.Tensor | None = None
        self._prompt: torch.Tensor | None = None
        self._host_prompt: torch.Tensor | None = None
        self._router: dict[str, Any] | None = None
        self._routes: list[list[torch.Tensor]] = []
        self._routing_parity: dict[str, Any] | None = None

    # ---- hooks the layers call (they only set state; nothing is compiled until first use)
    def set_attention(self, kind: str) -> None:
        kernel = MOE_ATTENTION_KERNELS[kind]
        assert self.model is not None
        for attn in self.model.modules():
            if isinstance(attn, MoEAttention):
                attn.kernel = kernel
        self.runtime.invalidate()

    def _forward_last(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        return self.runtime.forward(tokens, start)[:, -1]

    def make_inputs(self, seed: int) -> torch.Tensor:
        return prompt_tokens(self.shape["vocab"], self.shape["batch"], self.shape["prompt_len"],
                             seed, self.device)

    def parity_outputs(self, inputs: torch.Tensor, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        assert self.model is not None
        # The reference (no forced tokens) is the L0 run: its routing is the router health.
        collect = forced_tokens is None and self._router is None
        blocks = moe_blocks(self.model)
        for block in blocks:
            block.collect, block.tally = collect, None
            block.recorded = [] if collect else None
        replay = forced_tokens is not None and bool(self._routes) \
            and len(self._routes) == len(blocks)
        try:
            forward = self._replaying_forward(blocks) if replay else self._forward_last
            outputs = greedy_parity(forward, inputs, self.shape["new_tokens"], forced_tokens)
        finally:
            for block in blocks:
                block.collect = False
                if block.replay_on is not None:
                    block.replay_on.fill_(False)  # the timed steps route on their own
        if collect:
            self._routes = [block.recorded or [] for block in blocks]
            for block in blocks:
                block.recorded = None
            self._router = summarize([b.tally for b in blocks if b.tally is not None],
                                     self.shape["top_k"], self.shape["gating"],
                                     float(self.shape["aux_loss_coef"]))
        return outputs

    def _replaying_forward(self, blocks: list[Any]) -> Any:
        """The parity forward of a candidate: before each call, every MoE block is handed the
        reference's expert choice for that call (device buffers, so graphs and compiled steps
        replay it too); afterwards the flips are summed on the device."""
        routes = self._routes
        rows = max(r.shape[0] for layer in routes for r in layer)
        for block in blocks:
            block.enable_replay(rows)
        flips = torch.zeros((), dtype=torch.long, device=self.device)
        calls = {"n": 0}

        def forward(tokens: torch.Tensor, start: int) -> torch.Tensor:
            call = calls["n"]
            for block, layer in zip(blocks, routes, strict=True):
                recorded = layer[call] if call < len(layer) else None
                on = recorded is not None and recorded.shape[0] == tokens.numel()
                if on:
                    assert recorded is not None and block.replay_idx is not None
                    block.replay_idx[:recorded.shape[0]].copy_(recorded)
                block.replay_on.fill_(on)
            logits = self._forward_last(tokens, start)
            rows = tokens.numel()
            flips.add_(sum(block.replay_flips[:rows].sum() for block in blocks
                           if block.replay_flips is not None))
            calls["n"] += 1
            self._routing_parity = {
                "replayed": "the candidate used the reference's experts (weights its own)",
                "token_layer_choices": sum(r.shape[0] for layer in routes
                                           for r in layer[:calls["n"]]),
                "flipped": flips}
            return logits

        return forward

    def prepare(self, inputs: torch.Tensor) -> None:
        self._prompt = inputs
        if self.runtime.pinned and self.device.type == "cuda":
            self._host_prompt = inputs.cpu().pin_memory()
        # Decode steps start from a cache filled by one prefill; every step then decodes at
        # prompt_len, overwriting the same slot.
        self.prefill(inputs)

    def _upload_prompt(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._host_prompt is None or self._prompt is not inputs:
            return inputs
        return self._host_prompt.to(self.device, non_blocking=True)  # pinned: async DMA

    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "prefill":
            return self._forward_last(self._upload_prompt(inputs), 0)
        if self._next_token is None:
            raise RuntimeError("decode step before prepare(): the KV cache is empty")
        return self._forward_last(self._next_token, self.shape["prompt_len"])

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = self._upload_prompt(inputs)
        self._next_token = self._forward_last(inputs, 0).argmax(-1)[:, None]
        return self._next_token

    def decode_rest(self) -> int:
        assert self._next_token is not None
        position, token = self.shape["prompt_len"], self._next_token
        for _ in range(self.shape["new_tokens"] - 1):
            token = self._forward_last(token, position).argmax(-1)[:, None]
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
        blocks = moe_blocks(self.model)
        fp8 = bool(blocks) and blocks[0].weights.w13_q is not None
        # Native FP8 experts (L5-moe-fp8): one byte per weight plus a fp32 scale per row.
        expert_bytes = counts["expert"] + 4 * (2 * s["moe_inter"] + s["hidden"]) if fp8 \
            else size * counts["expert"]
        per_layer = (size * (counts["attention_per_layer"] + counts["shared_per_layer"])
                     + 4 * counts["router_per_layer"] + touched * expert_bytes)  # fp32 router
        kv = 2 * s["batch"] * s["kv_heads"] * s["head_dim"] * self._attention_context(
            s["prompt_len"] + 1)
        return float(s["layers"] * per_layer + size * (s["vocab"] * s["hidden"] + kv))

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
                                  f"of {total}",
                             graph_bypass=self.runtime.bypass_graphs)

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
                                 "fp8": blocks[0].weights.w13_q is not None,
                                 "decode_gemv": blocks[0].decode_gemv}
        if self._router is not None:
            facts["router"] = self._router
        if self._routing_parity is not None:
            flipped = self._routing_parity["flipped"]
            facts["routing_parity"] = {**self._routing_parity, "flipped": int(flipped)}
        facts["runtime"] = self.runtime.describe()
        return facts


def create_workload() -> Workload:
    return MoEWorkload()
