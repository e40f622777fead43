"""L4 (CUDA graphs for the decode step) and L5 (torch.compile) for the dense decoder.

L4 captures the whole decode step — every kernel of every layer — in one CUDA graph per
(batch, tokens) bucket and replays it, so the CPU launches one graph instead of hundreds of
kernels. Graphs need static shapes and device-side positions: L4 turns on L2's static KV cache
when L2 is not in the stack (the note says so).

L5 compiles the decode step (``compile_mode``, default "max-autotune-no-cudagraphs": Triton
fuses RMSNorm, RoPE, SwiGLU and the residual adds; L4 graphs the compiled step) and the
prefill (``compile_prefill_mode``, default "default": its GEMMs are large and cuBLAS is
already good, so autotuning them would only cost minutes). With compile_mode
"reduce-overhead" inductor captures its own CUDA graphs and L4's manual capture stands down.
"""

from __future__ import annotations

from typing import Any

import torch

from workloads.errors import WorkbenchError
from workloads.layers.memory import enable_static_cache

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def apply_graphs(workload: Any, device: torch.device) -> str | None:
    workload.runtime.graphs = True
    workload.runtime.invalidate()
    note = "decode step captured per (batch, tokens) bucket, replayed"
    if enable_static_cache(workload):
        note += "; turned on the static KV cache (graphs need static shapes)"
    return note


def apply_compile(workload: Any, device: torch.device) -> str | None:
    mode = str(workload.params.get("compile_mode"))
    prefill_mode = str(workload.params.get("compile_prefill_mode"))
    for name, value in (("compile_mode", mode), ("compile_prefill_mode", prefill_mode)):
        if value not in COMPILE_MODES:
            raise WorkbenchError(f"{name} {value!r} is not a torch.compile mode",
                                 f"choose one of: {', '.join(COMPILE_MODES)}")
    workload.runtime.compile_mode = mode
    workload.runtime.compile_prefill_mode = prefill_mode
    workload.runtime.invalidate()
    note = f"decode compiled ({mode}), prefill compiled ({prefill_mode})"
    if enable_static_cache(workload):
        note += "; turned on the static KV cache (one graph for every position)"
    if mode == "reduce-overhead" and workload.runtime.graphs:
        note += "; inductor's CUDA graphs replace L4's manual capture"
    return note
