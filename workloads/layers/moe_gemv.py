"""Fused decode-time expert GEMVs (L6-moe-grouped's decode path on CUDA): the routed experts of
a few tokens read straight from the stacked expert weights by expert id, a device tensor.

For T tokens routed to k experts each there are S = T*k (token, expert) slots; slot s belongs
to token s // k and expert e_s = topk_idx.flat[s]:

  up    h[s, i] = act(W13[e_s, i] . x[t_s] + b13[e_s, i], W13[e_s, I+i] . x[t_s] + b13[e_s, I+i])
  down  y[s, n] = g_s * (W2[e_s, n] . h[s] + b2[e_s, n])        (g_s: the slot's gate weight)
  out[t]      = sum_j y[t*k + j]                             (torch; compile fuses it)

No sort, no gather of activations, no padding and no host sync: the grid is (S, N blocks), so
a CUDA graph holds it and one compiled step serves every routing. Programs are numbered slot
fastest: slots of one expert at the same N block run side by side, so a weight block two
tokens share comes from DRAM once and from L2 after. Each program is an M=1 GEMV over its rows
(the dense L5-gemv's layout: a [BLOCK_N, BLOCK_K] fp32 tile reduced once at the end, 16-byte
loads along K, weights loaded evict-first); the up kernel reads the gate and up rows together
and applies the activation (SiLU-gated, or gpt-oss's clamped form) in its epilogue, so h is
written once. FP8 weights (L5-moe-fp8: e4m3, a fp32 scale per output row) are converted in
registers and scaled after the reduction: weight-only FP8, activations stay in the model dtype.

Bytes: each routed expert's rows once per step — decode's weight-bytes limit. Above MAX_SLOTS
slots the sorted dispatch with grouped GEMMs takes over (weights amortize over many rows).

``experts_gemv_reference`` is the same function in torch (CPU, tests); the custom op
``aiperf_moe::experts_gemv`` runs it off CUDA, so CPU runs exercise the same call and torch.compile
sees one opaque op either way. Triton is imported lazily (the CPU box and CI may lack it);
tests run the kernels in Triton's interpreter (tests/unit/moe_gemv_interpret.py).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, NamedTuple

import torch

from workloads.layers.moe_experts import ExpertWeights, activate

MAX_SLOTS = 64  # token-expert slots up to which decode takes the GEMV (batch 8 x top-8)
ACTIVATIONS = {"swiglu": 0, "gptoss": 1}


class GemvConfig(NamedTuple):
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


# bf16 rows: a [16, 256] tile is 8 KB per load (the up kernel loads two); FP8 rows are half
# the bytes, so its tiles run twice as long in K. Not yet tuned on a GPU: the sweep in
# benchmarks/moe_gemv.py times the alternatives in a CUDA graph.
DEFAULT_CONFIGS = {False: GemvConfig(16, 256, 4, 2), True: GemvConfig(16, 512, 4, 2)}


def gemv_unavailable(block: Any, device: torch.device) -> str | None:
    """Why the Triton expert GEMV cannot run for this MoE block, or None when it can."""
    if device.type != "cuda":
        return "the Triton expert GEMV needs CUDA"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    dtype = block.compute_dtype
    if dtype not in (torch.bfloat16, torch.float16):
        return f"the Triton expert GEMV is for bf16/fp16 models, this one runs in {dtype}"
    return None


def experts_gemv_reference(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                           w13: torch.Tensor, w2: torch.Tensor, b13: torch.Tensor | None,
                           b2: torch.Tensor | None, s13: torch.Tensor | None,
                           s2: torch.Tensor | None, activation: str) -> torch.Tensor:
    """The kernels' function in torch: fp32 sums, h rounded to x's dtype as the kernel
    stores it, the k slots summed in fp32. Gathers each slot's weights (fine off the GPU)."""
    tokens, top_k = topk_idx.shape
    idx = topk_idx.reshape(-1)
    rows = x.float().repeat_interleave(top_k, dim=0)  # [S, H]
    up = w13[idx].float()
    if s13 is not None:
        up = up * s13[idx].float().unsqueeze(-1)
    h = torch.einsum("sk,snk->sn", rows, up)
    if b13 is not None:
        h = h + b13[idx].float()
    h = activate(h, activation).to(x.dtype).float()
    down = w2[idx].float()
    if s2 is not None:
        down = down * s2[idx].float().unsqueeze(-1)
    y = torch.einsum("sk,snk->sn", h, down)
    if b2 is not None:
        y = y + b2[idx].float()
    y = y * topk_w.reshape(-1, 1).float()
    return y.view(tokens, top_k, -1).sum(dim=1).to(x.dtype)


@functools.cache
def _kernels() -> Any:
    """(triton, up kernel, down kernel); the kernels' module imports triton at its top."""
    import triton

    from workloads.layers import moe_gemv_kernels as kernels

    return triton, kernels.moe_up_kernel, kernels.moe_down_kernel


def experts_gemv_triton(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                        w13: torch.Tensor, w2: torch.Tensor, b13: torch.Tensor | None,
                        b2: torch.Tensor | None, s13: torch.Tensor | None,
                        s2: torch.Tensor | None, activation: str,
                        config: GemvConfig | None = None) -> torch.Tensor:
    """x [T, H], topk_idx [T, k] -> [T, H] in x's dtype (two launches and a sum over k)."""
    triton, up_kernel, down_kernel = _kernels()
    tokens, top_k = topk_idx.shape
    slots, hidden = tokens * top_k, x.shape[1]
    inter = w13.shape[1] // 2
    fp8 = s13 is not None
    cfg = config or DEFAULT_CONFIGS[fp8]
    x = x.contiguous()
    idx = topk_idx.reshape(-1).contiguous()
    gate = topk_w.reshape(-1).contiguous()
    h = torch.empty(slots, inter, device=x.device, dtype=x.dtype)
    y = torch.empty(slots, hidden, device=x.device, dtype=torch.float32)
    launch = {"BLOCK_N": cfg.block_n, "BLOCK_K": cfg.block_k, "num_warps": cfg.num_warps,
              "num_stages": cfg.num_stages, "HAS_BIAS": b13 is not None, "IS_FP8": fp8}
    up_kernel[(slots, triton.cdiv(inter, cfg.block_n))](
        x, idx, w13, b13 if b13 is not None else x, s13 if s13 is not None else x, h,
        x.stride(0), w13.stride(0), w13.stride(1),
        b13.stride(0) if b13 is not None else 0, s13.stride(0) if s13 is not None else 0,
        h.stride(0), TOP_K=top_k, INTER=inter, HIDDEN=hidden,
        ACT=ACTIVATIONS[activation], **launch)
    down_kernel[(slots, triton.cdiv(hidden, cfg.block_n))](
        h, idx, gate, w2, b2 if b2 is not None else h, s2 if s2 is not None else h, y,
        h.stride(0), w2.stride(0), w2.stride(1),
        b2.stride(0) if b2 is not None else 0, s2.stride(0) if s2 is not None else 0,
        y.stride(0), HIDDEN=hidden, INTER=inter, **launch)
    return y.view(tokens, top_k, hidden).sum(dim=1).to(x.dtype)


@functools.cache
def experts_gemv_op() -> Any:
    """The two kernels as one torch custom op ``aiperf_moe::experts_gemv``: torch.compile
    keeps it one opaque call (a fake gives the shape) and CUDA graphs capture its launches."""

    @torch.library.custom_op("aiperf_moe::experts_gemv", mutates_args=())
    def experts_gemv(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                     w13: torch.Tensor, w2: torch.Tensor, b13: torch.Tensor | None,
                     b2: torch.Tensor | None, s13: torch.Tensor | None,
                     s2: torch.Tensor | None, activation: str) -> torch.Tensor:
        if x.device.type == "cuda":
            return experts_gemv_triton(x, topk_idx, topk_w, w13, w2, b13, b2, s13, s2,
                                       activation)
        return experts_gemv_reference(x, topk_idx, topk_w, w13, w2, b13, b2, s13, s2,
                                      activation)

    @experts_gemv.register_fake
    def _(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor, w13: torch.Tensor,
          w2: torch.Tensor, b13: torch.Tensor | None, b2: torch.Tensor | None,
          s13: torch.Tensor | None, s2: torch.Tensor | None, activation: str) -> torch.Tensor:
        return x.new_empty(x.shape)

    return experts_gemv


def experts_gemv(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                 ew: ExpertWeights) -> torch.Tensor:
    """The decode path of a MoE block: bf16/fp16 weights, or native FP8 ones with scales.
    Calls the registered op, never ``experts_gemv_op()``: dynamo would trace into that
    functools.cache wrapper and break the compiled step there."""
    fp8 = ew.w13_q is not None
    w13 = ew.w13_q if fp8 else ew.w13
    w2 = ew.w2_q if fp8 else ew.w2
    assert w13 is not None and w2 is not None
    return torch.ops.aiperf_moe.experts_gemv(
        x, topk_idx, topk_w, w13, w2, ew.b13, ew.b2, ew.w13_s if fp8 else None,
        ew.w2_s if fp8 else None, ew.activation)


experts_gemv_op()  # registered at import (no triton needed), before anything is compiled
