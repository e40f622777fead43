"""The routed-experts half of a MoE block, in the implementations the layers switch between.

Weights are stacked per expert: ``w13`` [E, 2I, H] (gate rows then up rows, one GEMM for
both), ``w2`` [E, H, I], optional biases ``b13`` [E, 2I] and ``b2`` [E, H]. Routing gives each
token k (expert, weight) pairs: ``topk_idx`` / ``topk_w`` [T, k].

  L0 "loop"     for each expert: boolean mask over the routing, ``torch.where`` to find its
                tokens (a host sync per expert), gather, three GEMMs, ``index_add_`` back.
                What HF Mixtral-style code does: the honest eager baseline.
  L6 "sorted"   one stable sort of the T*k slots by expert, one gather of the tokens in that
                order, grouped GEMMs over contiguous per-expert row ranges (offsets from a
                device-side count: no host sync, so it can be graph-captured), one
                un-permute and a sum over k. Grouped GEMM backends:
                  grouped_mm  ``torch._grouped_mm`` (CUTLASS on sm90; a CPU fallback exists in
                              recent torch), used when a probe on the real shapes passes;
                  bmm         the rows scattered into a padded [E, C, H] buffer (C = T: an
                              expert gets at most one slot per token, so no sync) and
                              ``torch.bmm``; wasteful in FLOPs (E/k) but fine at decode.
  L5 fp8        weights quantized per output row to e4m3 (scale = row amax / 448). On a GPU
                where ``torch._scaled_grouped_mm`` passes its probe, activations are quantized
                per row on the fly and the GEMMs run in FP8; elsewhere the numerics are
                emulated (weights rounded through e4m3 and kept in the compute dtype).

A Triton grouped GEMM is not included: it would have to beat ``torch._grouped_mm`` on the H100
first, and that has not been measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

FP8_MAX = 448.0  # largest finite float8_e4m3fn
GPTOSS_ALPHA, GPTOSS_LIMIT = 1.702, 7.0
# Above this many padded rows (E * T) the bmm backend sizes its buffer from the real max
# count (one host sync) instead of the static worst case T.
BMM_STATIC_ROWS = 1 << 16


@dataclass
class ExpertWeights:
    w13: torch.Tensor | None  # [E, 2I, H]; None once replaced by native FP8 weights
    w2: torch.Tensor | None  # [E, H, I]
    b13: torch.Tensor | None = None
    b2: torch.Tensor | None = None
    activation: str = "swiglu"  # swiglu | gptoss (clamped SwiGLU, gpt-oss style)
    w13_q: torch.Tensor | None = None  # float8_e4m3fn, with per-row float32 scales
    w13_s: torch.Tensor | None = None
    w2_q: torch.Tensor | None = None
    w2_s: torch.Tensor | None = None

    @property
    def experts(self) -> int:
        return (self.w13 if self.w13 is not None else self.w13_q).shape[0]  # type: ignore[union-attr]


def activate(h: torch.Tensor, kind: str) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    if kind == "gptoss":
        gate = gate.clamp(max=GPTOSS_LIMIT)
        up = up.clamp(-GPTOSS_LIMIT, GPTOSS_LIMIT)
        return (up + 1) * (gate * torch.sigmoid(gate * GPTOSS_ALPHA))
    return F.silu(gate) * up


def experts_loop(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                 ew: ExpertWeights) -> torch.Tensor:
    """L0: x [T, H] -> [T, H], one masked gather + MLP per expert that got tokens."""
    assert ew.w13 is not None and ew.w2 is not None, "the loop needs dequantized weights"
    out = torch.zeros_like(x)
    for expert in range(ew.experts):
        token, slot = torch.where(topk_idx == expert)
        if token.numel() == 0:  # a host sync per expert: part of what L6 removes
            continue
        h = x[token] @ ew.w13[expert].t()
        if ew.b13 is not None:
            h = h + ew.b13[expert]
        y = activate(h, ew.activation) @ ew.w2[expert].t()
        if ew.b2 is not None:
            y = y + ew.b2[expert]
        out.index_add_(0, token, y * topk_w[token, slot, None])
    return out


@dataclass
class SortedRouting:
    order: torch.Tensor  # [T*k] slot indices sorted by expert (stable)
    token_of: torch.Tensor  # [T*k] token of each sorted slot
    expert_of: torch.Tensor  # [T*k] expert of each sorted slot
    counts: torch.Tensor  # [E] slots per expert
    offsets: torch.Tensor  # [E] int32 cumulative end offsets (the grouped GEMM's offs)


def sort_routing(topk_idx: torch.Tensor, experts: int) -> SortedRouting:
    flat = topk_idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    # index_add_ rather than bincount: bincount on CUDA syncs to size its output.
    counts = torch.zeros(experts, dtype=torch.int64, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    return SortedRouting(order, order // topk_idx.shape[1], flat[order], counts,
                         torch.cumsum(counts, 0).to(torch.int32))


def grouped_mm_native(a: torch.Tensor, w: torch.Tensor, routing: SortedRouting,
                      capacity: int) -> torch.Tensor:
    # w [E, N, K] (nn.Linear layout) viewed as [E, K, N] column-major: accepted as is.
    return torch._grouped_mm(a, w.transpose(-2, -1), offs=routing.offsets)


def grouped_mm_bmm(a: torch.Tensor, w: torch.Tensor, routing: SortedRouting,
                   capacity: int) -> torch.Tensor:
    experts = w.shape[0]
    if experts * capacity > BMM_STATIC_ROWS:
        capacity = max(int(routing.counts.max()), 1)
    starts = routing.offsets.to(torch.int64) - routing.counts
    position = torch.arange(a.shape[0], device=a.device) - starts[routing.expert_of]
    padded = a.new_zeros(experts, capacity, a.shape[1])
    padded[routing.expert_of, position] = a
    return torch.bmm(padded, w.transpose(1, 2))[routing.expert_of, position]


def quantize_rows(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row e4m3 quantization of the last dimension: (values, float32 scales [..., rows])."""
    scale = a.float().abs().amax(dim=-1).clamp_min(1e-12) / FP8_MAX
    quantized = (a.float() / scale.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX)
    return quantized.to(torch.float8_e4m3fn), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (q.float() * scale.unsqueeze(-1)).to(dtype)


def scaled_grouped_mm_fp8(a: torch.Tensor, wq: torch.Tensor, ws: torch.Tensor,
                          routing: SortedRouting) -> torch.Tensor:
    aq, a_scale = quantize_rows(a)
    return torch._scaled_grouped_mm(aq, wq.transpose(-2, -1), a_scale, ws,
                                    offs=routing.offsets, out_dtype=torch.bfloat16)


def experts_sorted(x: torch.Tensor, topk_idx: torch.Tensor, topk_w: torch.Tensor,
                   ew: ExpertWeights, backend: str) -> torch.Tensor:
    """L6: sort/permute dispatch + grouped GEMMs. x [T, H] -> [T, H]."""
    tokens, top_k = topk_idx.shape
    routing = sort_routing(topk_idx, ew.experts)
    rows = x[routing.token_of]
    gemm = grouped_mm_native if backend == "grouped_mm" else grouped_mm_bmm
    if ew.w13_q is not None:
        h = scaled_grouped_mm_fp8(rows, ew.w13_q, ew.w13_s, routing).to(x.dtype)  # type: ignore[arg-type]
    else:
        h = gemm(rows, ew.w13, routing, tokens)  # type: ignore[arg-type]
    if ew.b13 is not None:
        h = h + ew.b13[routing.expert_of]
    a = activate(h, ew.activation)
    if ew.w2_q is not None:
        y = scaled_grouped_mm_fp8(a, ew.w2_q, ew.w2_s, routing).to(x.dtype)  # type: ignore[arg-type]
    else:
        y = gemm(a, ew.w2, routing, tokens)  # type: ignore[arg-type]
    if ew.b2 is not None:
        y = y + ew.b2[routing.expert_of]
    y = y * topk_w.reshape(-1)[routing.order, None]
    slots = torch.empty_like(y)
    slots[routing.order] = y  # a permutation: deterministic, no atomics
    return slots.view(tokens, top_k, -1).sum(dim=1)


def _reference(a: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
    outs, start = [], 0
    for expert, count in enumerate(counts):
        outs.append(a[start:start + count].float() @ w[expert].float().t())
        start += count
    return torch.cat(outs)


def _probe_inputs(w: torch.Tensor) -> tuple[torch.Tensor, SortedRouting, list[int]]:
    generator = torch.Generator(device="cpu").manual_seed(0)
    experts = min(w.shape[0], 4)
    counts = [3, 0, 8, 5][:experts]
    idx = torch.cat([torch.full((c,), e) for e, c in enumerate(counts)]).to(w.device)
    routing = sort_routing(idx[:, None], w.shape[0])
    a = torch.randn(sum(counts), w.shape[-1], generator=generator).to(w.device, w.dtype)
    return a, routing, counts


def probe_grouped_mm(w: torch.Tensor) -> str | None:
    """None if ``torch._grouped_mm`` computes ``w``'s shape/dtype/device right, else why not."""
    if not hasattr(torch, "_grouped_mm"):
        return f"torch {torch.__version__} has no torch._grouped_mm"
    a, routing, counts = _probe_inputs(w)
    try:
        got = grouped_mm_native(a, w, routing, a.shape[0]).float()
        # torch.compile traces through the op's shape function (fake tensors), which can be
        # stricter than the kernel: on CPU it refuses fp32 that the eager kernel takes.
        meta = SortedRouting(*(t.to("meta") for t in (routing.order, routing.token_of,
                                                       routing.expert_of, routing.counts,
                                                       routing.offsets)))
        grouped_mm_native(a.to("meta"), w.to("meta"), meta, a.shape[0])
    except Exception as exc:  # any failure means: use the bmm backend
        return f"torch._grouped_mm failed: {' '.join(str(exc).split())[:160]}"
    want = _reference(a, w, counts)
    error = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
    return None if error < 2e-2 else f"torch._grouped_mm disagrees with a loop (rel err {error:.2g})"


def probe_scaled_grouped_mm(w: torch.Tensor) -> str | None:
    """None if the FP8 grouped GEMM runs and agrees on ``w``'s shape, else why not."""
    if w.device.type != "cuda":
        return "FP8 GEMMs need a CUDA GPU"
    if not hasattr(torch, "_scaled_grouped_mm"):
        return f"torch {torch.__version__} has no torch._scaled_grouped_mm"
    if torch.cuda.get_device_capability(w.device) < (9, 0):
        return "torch._scaled_grouped_mm needs compute capability 9.0+"
    a, routing, counts = _probe_inputs(w.to(torch.bfloat16))
    wq, ws = quantize_rows(w)
    try:
        got = scaled_grouped_mm_fp8(a, wq, ws, routing).float()
    except Exception as exc:
        return f"torch._scaled_grouped_mm failed: {' '.join(str(exc).split())[:160]}"
    want = _reference(a, w, counts)
    error = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
    return None if error < 0.1 else f"FP8 grouped GEMM disagrees with a loop (rel err {error:.2g})"
