"""Weight-GEMM layers: L5-gemv (Triton GEMV for M <= 16) and L5-fp8 (FP8 e4m3 weights).

Both replace the dense decoder's ``nn.Linear`` modules in place (projections and the LM head),
so they compose with the fused projections of L2, CUDA graphs (L4) and torch.compile (L5).

FP8 (per-row by default, ``fp8_scaling=tensor`` for one scale per matrix):
  scale[n] = amax_k |W[n, k]| / 448,  Wq = round_e4m3(W / scale)     (448 = e4m3 max)
  decode (M <= 16): y = scale * (x @ Wq^T) in the Triton GEMV, Wq dequantized in registers
                    (weight-only FP8: activations stay bf16);
  prefill (M > 16): torch._scaled_mm with activations quantized per row (or per tensor), M
                    padded to a multiple of 16, Wq^T passed column-major as cuBLASLt wants.
The relative error of one e4m3 element is at most 2^-4 (3 mantissa bits, round to nearest);
``quantize_fp8`` is checked against that bound on the CPU.

Each bf16 weight is freed as soon as its FP8 copy exists (the linears are swapped one at a
time, and quantized in row chunks), so the conversion never holds two copies of the model.
Both layers also fold each RMSNorm's weight into the projections after it and switch the
decoder to GEMVs that apply the norm and the residual add themselves, and SwiGLU as one op
(workloads.layers.triton_fused): per layer, the decode step runs no norm or add kernel.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads.layers.triton_gemv import MAX_M, gemv_op, gemv_reference

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0
FP8_REL_ERR = 2.0 ** -4  # half an ulp at 3 mantissa bits
QUANTIZE_ROWS = 8192  # rows converted at a time: the fp32 transient stays ~2 x 8192 x K x 4 B


def quantize_fp8(weight: torch.Tensor, per_row: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """W [N, K] -> (Wq e4m3 [N, K], scale fp32 [N] (per row) or [1] (per tensor)). |W|'s
    maxima are exact in any float dtype, so they are taken without an fp32 copy; the scaling
    runs in fp32 over row chunks (the LM head in fp32 would be 2 GB)."""
    amax = weight.abs().amax(dim=1) if per_row else weight.abs().amax().reshape(1)
    scale = amax.float().clamp_min(1e-12) / FP8_MAX
    wq = torch.empty(weight.shape, device=weight.device, dtype=FP8_DTYPE)
    for lo in range(0, weight.shape[0], QUANTIZE_ROWS):
        rows = slice(lo, lo + QUANTIZE_ROWS)
        scaled = weight[rows].float() / (scale[rows, None] if per_row else scale)
        wq[rows] = scaled.clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return wq, scale


def dequantize_fp8(wq: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    per_row = scale.numel() == wq.shape[0] and scale.numel() > 1
    return wq.float() * (scale[:, None] if per_row else scale)


def _rows(x: torch.Tensor) -> int:
    rows = 1
    for size in x.shape[:-1]:
        rows *= size
    return rows


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm without its weight (folded into the next projection): the large-M path."""
    return torch.ops.aiperf.rms_norm(x, None, eps)


def _linear_epilogue(y: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return y if residual is None else y + residual


class GemvLinear(nn.Module):
    """bf16 weight; M <= 16 goes to the Triton GEMV, larger M to cuBLAS.

    ``forward(x, rms_eps, residual)``: with ``rms_eps`` > 0, x is the un-normalized residual
    stream and the RMSNorm before this projection (its weight folded into ours) is applied by
    the GEMV; with ``residual``, the residual add after it. Above M = 16: one norm op, then
    cuBLAS and the residual add.

    forward calls the registered op ``torch.ops.aiperf.gemv``, never ``gemv_op()``: dynamo
    traced into that functools.cache wrapper and broke the graph at every linear (17 breaks in
    a 4-layer model), so the compiled decode fell apart into per-block frames, hit the
    recompile limit and ran 24 of 32 layers eagerly: L5-gemv was slower than L5 on an H200
    (165 vs 188 tok/s) until this."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        gemv_op()  # registers torch.ops.aiperf.gemv
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor, rms_eps: float = 0.0,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        n = self.weight.shape[0]
        flat = x.reshape(-1, x.shape[-1])
        res = residual.reshape(-1, n) if residual is not None else None
        if flat.shape[0] > MAX_M:
            if rms_eps > 0:
                flat = rms_normalize(flat, rms_eps)
            # linear, then the add — as the FP8 path does. With addmm(res, x, W^T) here the
            # best bf16 stack's compiled prefill never finished on an H200 (an inductor lowering
            # error whose message took minutes to format); the FP8 stack, linear + add,
            # compiled and ran in the same session. (This form is not yet re-run on a GPU.)
            y = _linear_epilogue(F.linear(flat, self.weight), res)
        else:
            y = torch.ops.aiperf.gemv(flat, self.weight, None, res, rms_eps)
        return y.view(*x.shape[:-1], n)


class Fp8Linear(nn.Module):
    """FP8 e4m3 weight with per-row or per-tensor fp32 scales (see the module docstring);
    ``forward(x, rms_eps, residual)`` as GemvLinear's."""

    weight_fp8: torch.Tensor  # buffers registered in __init__
    scale: torch.Tensor
    scale_row: torch.Tensor

    def __init__(self, weight: torch.Tensor, per_row: bool) -> None:
        super().__init__()
        gemv_op()  # registers torch.ops.aiperf.gemv
        wq, scale = quantize_fp8(weight, per_row)
        self.out_dtype = weight.dtype
        self.per_row = per_row
        self.register_buffer("weight_fp8", wq.contiguous())
        self.register_buffer("scale", scale.contiguous())
        self.register_buffer("scale_row", scale.reshape(1, -1) if per_row else scale.reshape(()))

    def forward(self, x: torch.Tensor, rms_eps: float = 0.0,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        n = self.weight_fp8.shape[0]
        res = residual.reshape(-1, n) if residual is not None else None
        if flat.shape[0] <= MAX_M:
            if x.device.type == "cuda":
                y = torch.ops.aiperf.gemv(flat, self.weight_fp8, self.scale, res, rms_eps)
            else:
                y = gemv_reference(flat, self.weight_fp8, self.scale, res, rms_eps)
        else:
            if rms_eps > 0:
                flat = rms_normalize(flat, rms_eps)
            y = _linear_epilogue(self._scaled_mm(flat), res)
        return y.view(*x.shape[:-1], n)

    def _scaled_mm(self, flat: torch.Tensor) -> torch.Tensor:
        m = flat.shape[0]
        padded = -(-m // 16) * 16  # _scaled_mm wants M % 16 == 0
        if padded != m:
            flat = F.pad(flat, (0, 0, 0, padded - m))
        x32 = flat.float()
        if self.per_row:
            x_scale = x32.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / FP8_MAX
        else:
            x_scale = (x32.abs().amax().clamp_min(1e-12) / FP8_MAX).reshape(())
        xq = (x32 / x_scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
        y = torch._scaled_mm(xq, self.weight_fp8.t(), scale_a=x_scale, scale_b=self.scale_row,
                             out_dtype=self.out_dtype)
        return y[:m]


def _replace_linears(model: nn.Module, make: Any) -> int:
    """Swap every nn.Linear under ``model`` for ``make(weight)``; returns how many. Each old
    weight is released before the next linear is made: the list of names holds no module (a
    list of the modules kept every bf16 weight alive until the end — on the 8B model the FP8
    conversion peaked at 23.5 GiB, bf16 and FP8 side by side)."""
    names = [(parent_name, child_name) for parent_name, parent in model.named_modules()
             for child_name, child in parent.named_children() if type(child) is nn.Linear]
    for parent_name, child_name in names:
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child_name)
        weight = old.weight.data
        del old.weight  # the replacement, if it copies (quantizes), holds the only reference
        setattr(parent, child_name, make(weight))
        del old, weight
    return len(names)


def fold_norm_weights(model: Any) -> bool:
    """Multiply each RMSNorm's weight into the columns of the projections that read its
    output, and set it to ones: the same function (``W (g * x_hat) = (W diag(g)) x_hat``),
    rounded once more in the weights' dtype — exact for the random models here, whose norm
    weights are ones. The GEMVs can then apply the norm themselves (a scalar 1/rms per row).
    The norm modules stay (weight ones) for every path that still calls them. Once only;
    False when already folded."""
    if getattr(model, "norms_folded", False):
        return False

    def fold(norm: Any, projections: list[Any]) -> None:
        gain = norm.weight.data
        for projection in projections:
            projection.weight.data.mul_(gain.to(projection.weight.dtype)[None, :])
        gain.fill_(1.0)

    for block in model.blocks:
        attn, mlp = block.attn, block.mlp
        fold(block.attn_norm, [attn.qkv_proj] if attn.qkv_proj is not None
             else [attn.q_proj, attn.k_proj, attn.v_proj])
        fold(block.mlp_norm, [mlp.gate_up_proj] if mlp.gate_up_proj is not None
             else [mlp.gate_proj, mlp.up_proj])
    fold(model.norm, [model.lm_head])
    model.norms_folded = True
    return True


def apply_gemv(workload: Any, device: torch.device) -> str | None:
    """L5-gemv: the Triton GEMV for every bf16 weight GEMM at M <= 16 (decode)."""
    if workload.dtype == torch.float32:
        return "no effect: the GEMV is for bf16/fp16 weights, this model runs in fp32"
    count = _replace_linears(workload.model, GemvLinear)
    workload.set_fused_norms(True)  # folds the norm weights (bf16: after is the same)
    workload.runtime.invalidate()
    if count == 0:
        return "no effect: no bf16 linear left (L5-fp8 took them)"
    return (f"{count} linears use the Triton GEMV for M <= {MAX_M}; RMSNorm and residual "
            "adds fused into the GEMVs, SwiGLU one op")


def apply_fp8(workload: Any, device: torch.device) -> str | None:
    """L5-fp8: FP8 e4m3 weights (projections and LM head), per-row or per-tensor scales."""
    scaling = str(workload.params.get("fp8_scaling", "row"))
    if scaling not in ("row", "tensor"):
        from workloads.errors import WorkbenchError

        raise WorkbenchError(f"fp8_scaling must be 'row' or 'tensor', got {scaling!r}")
    per_row = scaling == "row"
    fold_norm_weights(workload.model)  # before quantizing: the folded weights get the scales
    count = _replace_linears(workload.model, lambda w: Fp8Linear(w, per_row))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the bf16 weights are gone; give their memory back
    workload.set_fused_norms(True)
    workload.compute_precision = "fp8"
    workload.runtime.weight_bytes_ratio = 0.5
    workload.runtime.invalidate()
    return (f"{count} linears in FP8 e4m3, {scaling}-wise scales; RMSNorm and residual adds "
            "fused into the GEMVs, SwiGLU one op")
