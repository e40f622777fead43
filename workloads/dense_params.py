"""The dense decoder's parameters and their checks, torch-free: the child validates the merged
preset + spec params here, and so do the front ends before any child starts (the same answer,
one line, exit 2, with nothing stored)."""

from __future__ import annotations

from typing import Any

from workloads import estimate
from workloads.errors import WorkbenchError

MODES = ("decode", "prefill", "generate")
SHAPE_KEYS = ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "batch", "prompt_len",
              "new_tokens", "max_seq", "dtype", "rope_theta", "norm_eps")
# Run options (not part of the model's shape); layers read theirs from here.
RUN_DEFAULTS: dict[str, Any] = {
    "mode": "decode",
    "unmet_layers": "fail",  # "skip": record a layer whose requirement is unmet, run the rest
    "compile_mode": "max-autotune-no-cudagraphs",  # L5 decode step; or "reduce-overhead", ...
    "compile_prefill_mode": "default",  # L5 prefill: large GEMMs, cuBLAS is already good
    "fp8_scaling": "row",  # L5-fp8: "row" (per output channel) or "tensor"
    "spec_k": 4,  # L6-spec: draft tokens per round
    "draft_layers": 0,  # L6-spec: draft depth; 0 = a quarter of the target's layers
    "kv_block": 16,  # L6-paged: tokens per KV block
    "decode_kernel": "split-kv",  # L3's one-token decode: "split-kv" (Triton) or "sdpa"
    # A fixed sleep inside every measured step: a slowdown known in advance, for tests of the
    # diff and its gate that must not flip with the load of the machine. 0: none.
    "step_sleep_ms": 0.0,
}
RUN_KEYS = tuple(RUN_DEFAULTS)
DECODE_KERNELS = ("split-kv", "sdpa")
OPTIONAL_SHAPE = {"window": 0}  # sliding-window size; 0 = full causal attention


def resolve_shape(params: dict[str, Any]) -> dict[str, Any]:
    """Validate merged preset+spec params; return the model shape. WorkbenchError if bad."""
    unknown = sorted(set(params) - set(SHAPE_KEYS) - set(RUN_KEYS) - set(OPTIONAL_SHAPE))
    if unknown:
        raise WorkbenchError(f"unknown dense params: {', '.join(unknown)}",
                             f"known: {', '.join(SHAPE_KEYS + RUN_KEYS + tuple(OPTIONAL_SHAPE))}")
    missing = [k for k in SHAPE_KEYS if k not in params]
    if missing:
        raise WorkbenchError(f"missing dense params: {', '.join(missing)}")
    shape = {k: params[k] for k in SHAPE_KEYS}
    shape.update({k: params.get(k, v) for k, v in OPTIONAL_SHAPE.items()})
    if isinstance(shape["window"], bool) or not isinstance(shape["window"], int) \
            or shape["window"] < 0:
        raise WorkbenchError(f"dense param window must be an integer >= 0, "
                             f"got {shape['window']!r}")
    if params.get("unmet_layers", "fail") not in ("fail", "skip"):
        raise WorkbenchError("dense param unmet_layers must be 'fail' or 'skip'")
    sleep = params.get("step_sleep_ms", 0.0)
    if isinstance(sleep, bool) or not isinstance(sleep, int | float) or not 0 <= sleep <= 60_000:
        raise WorkbenchError(f"dense param step_sleep_ms must be 0..60000 ms, got {sleep!r}")
    if params.get("decode_kernel", "split-kv") not in DECODE_KERNELS:
        raise WorkbenchError(f"dense param decode_kernel must be one of "
                             f"{', '.join(DECODE_KERNELS)}, got {params['decode_kernel']!r}")
    for key in ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "batch",
                "prompt_len", "new_tokens", "max_seq"):
        if isinstance(shape[key], bool) or not isinstance(shape[key], int) or shape[key] < 1:
            raise WorkbenchError(f"dense param {key} must be a positive integer, "
                                 f"got {shape[key]!r}")
    for key in ("rope_theta", "norm_eps"):
        if isinstance(shape[key], bool) or not isinstance(shape[key], int | float) \
                or shape[key] <= 0:
            raise WorkbenchError(f"dense param {key} must be a positive number, "
                                 f"got {shape[key]!r}")
    estimate.dtype_bytes(shape["dtype"])
    if shape["hidden"] % shape["heads"] or (shape["hidden"] // shape["heads"]) % 2:
        raise WorkbenchError(f"hidden ({shape['hidden']}) must split into {shape['heads']} "
                             "heads of an even head_dim (RoPE rotates pairs)")
    if shape["heads"] % shape["kv_heads"]:
        raise WorkbenchError(f"heads ({shape['heads']}) must be a multiple of kv_heads "
                             f"({shape['kv_heads']}) for grouped-query attention")
    if shape["prompt_len"] + shape["new_tokens"] > shape["max_seq"]:
        raise WorkbenchError(
            f"prompt_len + new_tokens ({shape['prompt_len'] + shape['new_tokens']}) exceeds "
            f"max_seq ({shape['max_seq']})", "raise max_seq or shorten the run")
    return shape
