"""Which optimization layer a finding or a budget line may name.

One rule for the advice, the speed-of-light budget and the app: a suggestion names a layer
exactly as `aiperf-workbench workloads` prints it, only a layer that applies to the run's
workload and device, and never one the run already has (a run that has the remedy gets no
layer: the remedy is in place, so the finding must say what else to do).

Remedies are named by what they do; each maps to its layers in order of preference.
"""

from __future__ import annotations

from collections.abc import Iterable

from workloads.catalog import LAYERS

REMEDY_LAYERS: dict[str, tuple[str, ...]] = {
    "precision": ("L1",),
    "memory_layout": ("L2",),  # fused projections, static KV cache
    "attention_kernel": ("L3",),
    "cuda_graphs": ("L4",),
    "compile_fusion": ("L5",),
    # Inside a CUDA graph each kernel boundary still costs ~1-2 us: fewer, larger kernels.
    "fewer_kernels": ("L5",),
    "gemv": ("L5-gemv",),
    "fp8_weights": ("L5-fp8", "L5-moe-fp8"),
    "fp8_kv": ("L6-fp8kv",),
    "paged_kv": ("L6-paged",),
    "speculative": ("L6-spec",),
    "grouped_experts": ("L6-moe-grouped",),
}


def layer_applies(name: str, workload: str | None, device_kind: str | None = None) -> bool:
    """True when layer ``name`` exists and can run for ``workload`` on ``device_kind``."""
    info = LAYERS.get(name)
    if info is None:
        return False
    if workload and info.applies_to and workload not in info.applies_to:
        return False
    return not (device_kind == "cpu" and "cuda" in info.requires)


def layer_for(remedy: str, workload: str | None, present: Iterable[str] = (),
              device_kind: str | None = None) -> str | None:
    """The layer to name for ``remedy`` on this run, or None when none applies or the run
    already has one of the remedy's layers."""
    have = set(present)
    candidates = [name for name in REMEDY_LAYERS.get(remedy, ())
                  if layer_applies(name, workload, device_kind)]
    if any(name in have for name in candidates):
        return None
    return candidates[0] if candidates else None


def has_remedy(remedy: str, present: Iterable[str]) -> bool:
    """True when the run already has a layer of ``remedy``."""
    have = set(present)
    return any(name in have for name in REMEDY_LAYERS.get(remedy, ()))
