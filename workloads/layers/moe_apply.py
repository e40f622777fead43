"""The MoE layers: switch every MoE block of a workload to another expert implementation.

  L5-moe-fp8      FP8 experts: weights quantized per output row (e4m3). Native FP8 grouped
                  GEMMs where ``torch._scaled_grouped_mm`` passes a probe on the real shapes
                  (then the sorted dispatch is used), otherwise emulated numerics with a note.
  L6-moe-grouped  sort/permute dispatch + grouped-GEMM experts (``torch._grouped_mm`` where it
                  passes a probe, else the padded ``torch.bmm`` backend, named in the note).

On a workload without MoE blocks they do nothing and say so. See
``workloads.layers.moe_experts`` for the implementations.

The dense layers as the MoE decoders take them (``MOE_LAYER_FUNCTIONS``; the registry in
``workloads.layers`` uses these for the moe and gptoss workloads):

  L2  static KV cache (tensor positions, index_copy_), contiguous weights, pinned prompt; the
      QKV and per-expert gate-up projections are fused in the model already.
  L3  SDPA / FlexAttention with window and sinks (``workloads.layers.moe_attention``).
  L4  the decode step in a CUDA graph (``layers.runtime``); the masked loop over experts
      syncs the host once per expert, which a graph cannot hold, so L4 turns on L6's sorted
      dispatch when L6-moe-grouped is not in the stack (its note says so).
  L5  the decode step compiled (param compile_mode, default "default": the experts are
      grouped GEMMs or Triton custom ops either way, and max-autotune's GEMM search costs
      minutes per MoE step); the prefill compiled only in prefill mode (compile_prefill_mode)
      — a decode run would spend a second compile on a step it does not time. Also turns on
      the sorted dispatch (data-dependent expert loops break a compiled graph at every expert).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from workloads.errors import WorkbenchError
from workloads.interface import Workload
from workloads.layers.compiled import COMPILE_MODES, apply_graphs
from workloads.layers.memory import enable_static_cache
from workloads.layers.moe_attention import apply_moe_attention
from workloads.layers.moe_block import moe_blocks
from workloads.layers.moe_experts import (
    dequantize_rows,
    probe_grouped_mm,
    probe_scaled_grouped_mm,
    quantize_rows,
)

NO_MOE = "no effect: the workload has no MoE blocks"


def _sorted_dispatch(workload: Workload) -> str:
    """Switch every MoE block to the sync-free sorted dispatch with the grouped-GEMM backend
    that passes its probe; returns what it chose."""
    blocks = moe_blocks(workload.model)
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


def apply_grouped_experts(workload: Workload, device: torch.device) -> str | None:
    blocks = moe_blocks(workload.model)
    if not blocks:
        return NO_MOE
    note = _sorted_dispatch(workload)
    decode = enable_decode_gemv(blocks, device)
    _invalidate(workload)
    return f"{note}; {decode}"


def enable_decode_gemv(blocks: list[Any], device: torch.device) -> str:
    """At decode (few token-expert slots) the fused Triton expert GEMV on CUDA, if triton is
    there and the model runs in bf16/fp16; the note says which path decode takes."""
    from workloads.layers.moe_gemv import MAX_SLOTS, gemv_unavailable

    reason = gemv_unavailable(blocks[0], device)
    if reason is not None:
        return f"decode through the same grouped path ({reason})"
    for block in blocks:
        block.decode_gemv = True
    return (f"decode (<= {MAX_SLOTS} token-expert slots): fused Triton expert GEMV reading "
            "each routed expert's rows by expert id, no sort")


def _invalidate(workload: Workload) -> None:
    runtime = getattr(workload, "runtime", None)
    if runtime is not None:  # a compiled step or captured graph must be rebuilt
        runtime.invalidate()


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
    _invalidate(workload)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the bf16 expert weights are gone: give their memory back
    if reason is None:
        return "FP8 e4m3 experts, per-row scales, torch._scaled_grouped_mm (sorted dispatch)"
    return f"FP8 numerics emulated: weights rounded to e4m3 per row, computed in the model dtype ({reason})"


def _capturable(workload: Workload, why: str) -> str | None:
    """Turn on the sorted dispatch when the blocks still loop over experts (host syncs)."""
    blocks = moe_blocks(workload.model)
    if not blocks or all(block.dispatch == "sorted" for block in blocks):
        return None
    return f"turned on L6-moe-grouped's {_sorted_dispatch(workload)} ({why})"


def apply_moe_memory(workload: Any, device: torch.device) -> str | None:
    """L2 for the MoE decoders: static KV cache, contiguous weights, pinned prompt."""
    for param in workload.model.parameters():
        if not param.is_contiguous():
            param.data = param.data.contiguous()
    enable_static_cache(workload)
    notes = ["static KV cache (index_copy_, tensor positions)",
             "QKV and expert gate-up projections fused in the model already"]
    if device.type == "cuda":
        workload.runtime.pinned = True
        notes.append("pinned host prompt buffer")
    return "; ".join(notes)


def apply_moe_graphs(workload: Any, device: torch.device) -> str | None:
    note = apply_graphs(workload, device) or ""
    switched = _capturable(workload, "the masked loop syncs the host per expert; a CUDA "
                                     "graph cannot hold that")
    return f"{note}; {switched}" if switched else note


def apply_moe_compile(workload: Any, device: torch.device) -> str | None:
    mode = str(workload.params.get("compile_mode"))
    prefill_mode = str(workload.params.get("compile_prefill_mode"))
    for name, value in (("compile_mode", mode), ("compile_prefill_mode", prefill_mode)):
        if value not in COMPILE_MODES:
            raise WorkbenchError(f"{name} {value!r} is not a torch.compile mode",
                                 f"choose one of: {', '.join(COMPILE_MODES)}")
    runtime = workload.runtime
    runtime.compile_mode = mode
    compile_prefill = workload.mode == "prefill"
    runtime.compile_prefill_mode = prefill_mode if compile_prefill else None
    runtime.invalidate()
    note = f"decode compiled ({mode})" + (f", prefill compiled ({prefill_mode})"
                                          if compile_prefill else
                                          ", prefill eager (a decode run does not time it)")
    if enable_static_cache(workload):
        note += "; turned on the static KV cache (one graph for every position)"
    switched = _capturable(workload, "a loop over experts breaks the compiled graph at "
                                     "every expert")
    if switched:
        note += f"; {switched}"
    if mode == "reduce-overhead" and runtime.graphs:
        note += "; inductor's CUDA graphs replace L4's manual capture"
    return note


MOE_LAYER_FUNCTIONS: dict[str, Callable[[Workload, torch.device], str | None]] = {
    "L2": apply_moe_memory,
    "L3": apply_moe_attention,
    "L4": apply_moe_graphs,
    "L5": apply_moe_compile,
}
