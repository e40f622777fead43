"""The MoE layers: switch every MoE block of a workload to another expert implementation.

  L5-moe-fp8      FP8 experts: weights quantized per output row (e4m3). Native FP8 grouped
                  GEMMs where ``torch._scaled_grouped_mm`` passes a probe on the real shapes
                  (then the sorted dispatch is used), otherwise emulated numerics with a note.
  L6-moe-grouped  sort/permute dispatch + grouped-GEMM experts (``torch._grouped_mm`` where it
                  passes a probe, else the padded ``torch.bmm`` backend, named in the note).

On a workload without MoE blocks they do nothing and say so, so a range like L0-L6 still runs
on the dense workload. See ``workloads.layers.moe_experts`` for the implementations.
"""

from __future__ import annotations

import torch

from workloads.interface import Workload
from workloads.layers.moe_block import moe_blocks
from workloads.layers.moe_experts import (
    dequantize_rows,
    probe_grouped_mm,
    probe_scaled_grouped_mm,
    quantize_rows,
)

NO_MOE = "no effect: the workload has no MoE blocks"


def apply_grouped_experts(workload: Workload, device: torch.device) -> str | None:
    blocks = moe_blocks(workload.model)
    if not blocks:
        return NO_MOE
    weights = blocks[0].weights
    probe_weight = weights.w13 if weights.w13 is not None else None
    reason = probe_grouped_mm(probe_weight) if probe_weight is not None else None
    if reason is None and probe_weight is not None and weights.w2 is not None:
        reason = probe_grouped_mm(weights.w2)
    backend = "grouped_mm" if reason is None else "bmm"
    for block in blocks:
        block.dispatch, block.backend = "sorted", backend
    if backend == "grouped_mm":
        return "sorted dispatch + torch._grouped_mm"
    return f"sorted dispatch + padded torch.bmm ({reason})"


def apply_fp8_experts(workload: Workload, device: torch.device) -> str | None:
    blocks = moe_blocks(workload.model)
    if not blocks:
        return NO_MOE
    first = blocks[0].weights
    if first.w13 is None or first.w2 is None:
        return "no effect: the experts are FP8 already"
    reason = probe_scaled_grouped_mm(first.w13) or probe_scaled_grouped_mm(first.w2)
    for block in blocks:
        w = block.weights
        assert w.w13 is not None and w.w2 is not None
        q13, s13 = quantize_rows(w.w13)
        q2, s2 = quantize_rows(w.w2)
        if reason is None:
            w.w13_q, w.w13_s, w.w2_q, w.w2_s = q13, s13, q2, s2
            w.w13 = w.w2 = None  # the FP8 copies replace them (half the weight bytes)
            block.dispatch = "sorted"
        else:
            dtype = w.w13.dtype
            w.w13, w.w2 = dequantize_rows(q13, s13, dtype), dequantize_rows(q2, s2, dtype)
    workload.compute_precision = "fp8"
    if reason is None:
        return "FP8 e4m3 experts, per-row scales, torch._scaled_grouped_mm (sorted dispatch)"
    return f"FP8 numerics emulated: weights rounded to e4m3 per row, computed in the model dtype ({reason})"
