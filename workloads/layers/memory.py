"""L2 memory layer for the dense decoder.

- fused projections: [q; k; v] and [gate; up] become one weight each, so x is read once and
  one GEMM launches instead of three (two);
- contiguous layouts: every weight made contiguous (fused weights are built contiguous);
- a preallocated static KV cache written with ``index_copy_`` at tensor positions: the decode
  step has the same shapes at every position and takes no Python-int position, which is what
  CUDA graphs (L4) and a compile-once step (L5) need;
- pinned host buffers (CUDA): the prompt is staged in page-locked memory and uploaded with a
  non-blocking copy.
"""

from __future__ import annotations

from typing import Any

import torch


def enable_static_cache(workload: Any) -> bool:
    """Turn on static-shape decode; True if it was off (L4/L5 call this when L2 is absent)."""
    if workload.runtime.static:
        return False
    workload.runtime.static = True
    workload.runtime.invalidate()
    return True


def apply_memory(workload: Any, device: torch.device) -> str | None:
    model = workload.model
    for block in model.blocks:
        block.attn.fuse()
        block.mlp.fuse()
    for param in model.parameters():
        if not param.is_contiguous():
            param.data = param.data.contiguous()
    enable_static_cache(workload)
    notes = ["fused QKV and gate-up projections", "static KV cache (index_copy_, tensor "
             "positions)"]
    if device.type == "cuda":
        workload.runtime.pinned = True
        notes.append("pinned host prompt buffer")
    else:
        notes.append("no pinned memory on CPU")
    return "; ".join(notes)
