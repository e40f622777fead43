"""A Llama-3-style dense decoder in plain PyTorch, and the workload that measures it.

RMSNorm, RoPE (theta from the preset; Llama-3.1's long-context frequency scaling is not
applied), grouped-query attention, SwiGLU MLP, untied LM head, a preallocated KV cache.
Weights are random from a seed and created directly on the device in the target dtype (the
8B preset is ~16 GB in bf16: no CPU detour). The attention is eager matmul + softmax on
purpose: faster attention is a later layer, measured against this baseline.

Step modes (params["mode"]): "decode" (default) = one decode step for the whole batch after a
prefill of prompt_len; "prefill" = a prefill of prompt_len tokens; "generate" = prefill plus
new_tokens-1 decode steps. With L6-spec a decode step is one speculative decode of
new_tokens-1 tokens (tokens_per_step counts them, so tokens/s compares across the ladder).

The modules live in ``workloads.layers.dense_model`` (re-exported here); every call goes
through ``layers.runtime.DecodeRuntime`` (eager / static / compiled / graphed). Run options
(RUN_DEFAULTS) sit beside the shape params: compile modes, fp8 scaling, speculative k and draft
depth, KV block size, window, and ``unmet_layers`` ("skip" is what the ladder sets).
"""

from __future__ import annotations

import time
from typing import Any, cast

import torch
from torch import nn

from workloads import estimate
from workloads.dense_params import (  # noqa: F401 - torch-free, so the front ends check first
    DECODE_KERNELS,
    MODES,
    OPTIONAL_SHAPE,
    RUN_DEFAULTS,
    RUN_KEYS,
    SHAPE_KEYS,
    resolve_shape,
)
from workloads.errors import WorkbenchError
from workloads.interface import ParityOutputs, Workload, greedy_parity, prompt_tokens
from workloads.layers.attention import ATTENTION_KERNELS
from workloads.layers.dense_model import (  # noqa: F401 - re-exported: the model's public home
    Attention,
    DecoderBlock,
    DenseDecoder,
    DraftDecoder,
    RMSNorm,
    SwiGLU,
    apply_rope,
    rope_tables,
)
from workloads.layers.kv_cache import KVCache, PagedKVCache
from workloads.layers.lowbit import fold_norm_weights
from workloads.layers.runtime import DecodeRuntime
from workloads.layers.speculative import speculative_decode
from workloads.parity import speculative_check

PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class DenseWorkload(Workload):
    name = "dense"
    generates = True
    model: DenseDecoder | None

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        self.mode = params.get("mode", "decode")
        if self.mode not in MODES:
            raise WorkbenchError(f"unknown dense mode {self.mode!r}",
                                 f"choose one of: {', '.join(MODES)}")
        self.shape = resolve_shape(params)
        self.params = {k: params.get(k, v) for k, v in RUN_DEFAULTS.items()}
        self.skip_unmet_layers = self.params["unmet_layers"] == "skip"
        self.step_name = self.mode
        self.device, self.dtype, self.seed = device, dtype, seed
        self.compute_precision = PRECISION_OF_DTYPE[dtype]
        check_fits(self.shape, device)
        self.model = DenseDecoder(self.shape, device, dtype, seed).eval()
        self.runtime = DecodeRuntime(self.model, device)
        self.draft: DecodeRuntime | None = None
        self.spec_k = 0
        self.spec_stats: dict[str, Any] = {}
        self._next_token: torch.Tensor | None = None
        self._prompt: torch.Tensor | None = None
        self._host_prompt: torch.Tensor | None = None

    # ---- hooks the layers call (they only set state; nothing is compiled until first use)
    def set_attention(self, kind: str) -> None:
        kernel = ATTENTION_KERNELS[kind]
        assert self.model is not None
        for block in self.model.blocks:
            cast(DecoderBlock, block).attn.kernel = kernel

    def set_fast_decode(self, enabled: bool) -> None:
        """L3: one-token decode through the fused RoPE + KV write and split-KV attention."""
        assert self.model is not None
        for block in self.model.blocks:
            cast(DecoderBlock, block).attn.fast_decode = enabled

    def set_fused_norms(self, enabled: bool) -> None:
        """L5-gemv / L5-fp8: RMSNorms and residual adds inside the GEMVs (norm weights folded
        into the projections first), SwiGLU as one op. Needs every linear to be a GEMV one."""
        assert self.model is not None
        if enabled:
            linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
            if linears:
                raise ValueError("fused norms need the GEMV / FP8 linears (L5-gemv, L5-fp8); "
                                 f"{len(linears)} nn.Linear left")
            fold_norm_weights(self.model)
        self.model.fused_norms = enabled
        for block in self.model.blocks:
            cast(DecoderBlock, block).mlp.fused_act = enabled
        if self.draft is not None:
            cast(DraftDecoder, self.draft.model).fused_norms = enabled

    def replace_cache(self, paged: bool | None = None, fp8: bool | None = None) -> None:
        """Swap the KV cache (paged and/or FP8 storage). The cache is rebuilt empty, so this
        must happen before any prefill the measured run relies on (layers apply before)."""
        assert self.model is not None
        self._cache_paged = self._cache_paged if paged is None else paged
        self._cache_fp8 = self._cache_fp8 if fp8 is None else fp8
        self.model.cache = self._new_cache(self.shape["layers"])
        if self.draft is not None:
            draft_blocks = cast(DraftDecoder, self.draft.model).blocks
            self.draft.model.cache = self._new_cache(len(draft_blocks))

    _cache_paged = False
    _cache_fp8 = False
    peak_before_prepare: int | None = None

    def _new_cache(self, layers: int) -> Any:
        s = self.shape
        args = (layers, s["batch"], s["kv_heads"], s["max_seq"], s["hidden"] // s["heads"],
                self.device, self.dtype)
        if self._cache_paged:
            return PagedKVCache(*args, block_size=int(self.params["kv_block"]),
                                fp8=self._cache_fp8, seed=self.seed)
        return KVCache(*args, fp8=self._cache_fp8)

    def enable_speculative(self, k: int, draft_layers: int) -> None:
        assert self.model is not None
        draft = DraftDecoder(self.model, draft_layers, self._new_cache(draft_layers)).eval()
        self.draft = DecodeRuntime(draft, self.device)
        self.draft.configure_like(self.runtime)
        self.spec_k = k

    # ---- the model calls every path goes through
    def _forward_last(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        return self.runtime.forward(tokens, start)[:, -1]

    def make_inputs(self, seed: int) -> torch.Tensor:
        return prompt_tokens(self.shape["vocab"], self.shape["batch"], self.shape["prompt_len"],
                             seed, self.device)

    def parity_outputs(self, inputs: torch.Tensor, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        outputs = greedy_parity(self._forward_last, inputs, self.shape["new_tokens"],
                                forced_tokens)
        if self.draft is not None and forced_tokens is not None:
            # Speculative decoding must reproduce the greedy decode exactly.
            self.prefill(inputs)
            spec_tokens = self._speculate(self.shape["new_tokens"] - 1)
            greedy = forced_tokens[1:].to(spec_tokens.device)
            self.spec_stats.update(speculative_check(spec_tokens, greedy, outputs.logits[1:],
                                                     self.compute_precision))
        return outputs

    def prepare(self, inputs: torch.Tensor) -> None:
        if self.device.type == "cuda":
            # The build and the L0 reference hold the model in the preset dtype whatever the
            # stack (an FP8 stack quantizes after them), so the run's peak would be the bf16
            # model's for every stack. The peak reported (read at the end of the run) is the
            # served stack's, from here on; the one before is kept in extra().
            self.peak_before_prepare = int(torch.cuda.max_memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)
        self._prompt = inputs
        if self.runtime.pinned and self.device.type == "cuda":
            self._host_prompt = inputs.cpu().pin_memory()
        # Decode steps start from a cache filled by one prefill; reset() rewinds to its end.
        self.prefill(inputs)

    def _upload_prompt(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._host_prompt is None or self._prompt is not inputs:
            return inputs
        return self._host_prompt.to(self.device, non_blocking=True)  # pinned: async DMA

    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.params["step_sleep_ms"]:
            time.sleep(self.params["step_sleep_ms"] / 1e3)  # the deliberate slowdown (tests)
        if self.mode == "prefill":
            return self._forward_last(self._upload_prompt(inputs), 0)
        if self.mode == "generate":
            self.prefill(inputs)
            self.decode_rest()
            return self._next_token  # type: ignore[return-value]  # set by prefill
        if self._next_token is None:
            raise RuntimeError("decode step before prepare(): the KV cache is empty")
        if self.draft is not None:
            return self._speculate(self.spec_count())
        # The cache beyond prompt_len is overwritten, so every repeat decodes the same position.
        return self._forward_last(self._next_token, self.shape["prompt_len"])

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = self._upload_prompt(inputs)
        self._next_token = self._forward_last(inputs, 0).argmax(-1)[:, None]
        if self.draft is not None:
            self.draft.forward(inputs, 0)
        return self._next_token

    def spec_count(self) -> int:
        """Tokens one speculative decode step produces (fixed, so tokens/s compares)."""
        return max(1, self.shape["new_tokens"] - 1)

    def _speculate(self, count: int) -> torch.Tensor:
        assert self.draft is not None and self._next_token is not None
        tokens, stats = speculative_decode(self.runtime.forward, self.draft.forward,
                                           self._next_token, self.shape["prompt_len"], count,
                                           self.spec_k)
        self.spec_stats.update(stats)
        return tokens

    def decode_rest(self) -> int:
        assert self._next_token is not None
        count = self.shape["new_tokens"] - 1
        if self.draft is not None and count > 0:
            self._next_token = self._speculate(count)[-1][:, None]
            return count
        position, token = self.shape["prompt_len"], self._next_token
        for _ in range(count):
            token = self._forward_last(token, position).argmax(-1)[:, None]
            position += 1
        self._next_token = token
        return count

    def prefill_tokens(self) -> int | None:
        return self.shape["batch"] * self.shape["prompt_len"]

    def tokens_per_step(self) -> int:
        batch = self.shape["batch"]
        decode = batch * (self.spec_count() if self.draft is not None else 1)
        return {"decode": decode, "prefill": batch * self.shape["prompt_len"],
                "generate": batch * self.shape["new_tokens"]}[self.mode]

    def _decode_positions(self) -> range:
        prompt_len = self.shape["prompt_len"]
        if self.mode == "decode" and self.draft is None:
            return range(prompt_len + 1, prompt_len + 2)
        return range(prompt_len + 1, prompt_len + self.shape["new_tokens"])

    def flops_per_step(self) -> float | None:
        prompt_len = self.shape["prompt_len"]
        if self.mode == "prefill":
            return float(estimate.prefill_flops(self.shape, prompt_len))
        total = sum(estimate.decode_flops(self.shape, ctx) for ctx in self._decode_positions())
        if self.mode == "generate":
            total += estimate.prefill_flops(self.shape, prompt_len)
        return float(total)

    def bytes_per_step(self) -> float | None:
        """Minimum DRAM traffic of the target's step: the weights (and embedding rows) at their
        storage width — FP8 weights halve them — and the K/V read and written at the cache's:
        an FP8 cache stores one byte per element."""
        prompt_len = self.shape["prompt_len"]
        kv_per_token = estimate.kv_bytes_per_token(self.shape) * self.shape["batch"]
        parts: list[tuple[int, int]] = []  # (all bytes, of which K/V)
        if self.mode == "prefill" or self.mode == "generate":
            parts.append((estimate.prefill_bytes(self.shape, prompt_len),
                          kv_per_token * prompt_len))
        if self.mode != "prefill":
            parts += [(estimate.decode_bytes(self.shape, ctx), kv_per_token * (ctx + 1))
                      for ctx in self._decode_positions()]
        kv_ratio = 1 / estimate.dtype_bytes(self.shape["dtype"]) if self._cache_fp8 else 1.0
        weight_ratio = self.runtime.weight_bytes_ratio
        return float(sum((total - kv) * weight_ratio + kv * kv_ratio for total, kv in parts))

    def extra(self) -> dict[str, Any]:
        counts = estimate.dense_param_counts(self.shape)
        out: dict[str, Any] = {
            "shape": dict(self.shape), "mode": self.mode, "params": counts.total,
            "memory_estimate": estimate.estimate_dense_memory(self.shape).to_dict(),
            "runtime": self.runtime.describe()}
        if self.peak_before_prepare is not None:
            out["peak_mem_before_prepare_bytes"] = self.peak_before_prepare
            out["peak_mem_note"] = ("peak_mem_bytes is from prepare() on (the served stack); "
                                    "the build and the L0 reference peaked at "
                                    "peak_mem_before_prepare_bytes")
        if self.draft is not None:
            draft_blocks = cast(DraftDecoder, self.draft.model).blocks
            out["speculative"] = {"k": self.spec_k, "draft_layers": len(draft_blocks),
                                  **self.spec_stats}
        return out


def check_fits(shape: dict[str, Any], device: torch.device) -> None:
    """Refuse a CUDA run whose estimated memory exceeds the free device memory, before any
    weight is allocated (an OOM halfway through a build says much less)."""
    if device.type != "cuda":
        return
    need = estimate.estimate_dense_memory(shape).total_bytes
    free, _total = torch.cuda.mem_get_info(device)
    if need > free:
        raise WorkbenchError(
            f"the run needs about {need / 2**30:.1f} GiB (weights, KV cache, activations) but "
            f"only {free / 2**30:.1f} GiB is free on {torch.cuda.get_device_name(device)}",
            "use a smaller preset, batch, prompt_len or max_seq")


def create_workload() -> Workload:
    return DenseWorkload()
