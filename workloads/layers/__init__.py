"""Layer registry: catalog layer name -> the function that applies it to a built workload.

An apply function takes (workload, device), changes the workload's model or the process math
settings, and returns None or a short note (e.g. "no effect on CPU"). One module per group:
precision (L0, L1), memory (L2), attention (L3), compiled (L4, L5), lowbit (L5-gemv,
L5-fp8), serving (L6-*). ``apply_layers`` checks each layer's requirements first; an unmet one
is recorded (applied=False, reason) and fails the run — unless the workload asks to skip
unmet layers (dense param ``unmet_layers=skip``, what the ladder sets), in which case the
layer is recorded as not applied and the rest of the stack runs.

The MoE decoders (moe, gptoss) take L2-L5 through their own functions
(``moe_apply.MOE_LAYER_FUNCTIONS``: the same layers for a model without ``blocks``). Layers a
range left out because they do not apply to the workload (``catalog.select_layers``) reach the
run as ``RunSpec.skipped_layers`` and are recorded as not applied with the reason
(``with_skipped``), so the Layers table says what the range skipped and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.interface import Workload
from workloads.layers.attention import apply_attention
from workloads.layers.compiled import apply_compile, apply_graphs
from workloads.layers.lowbit import apply_fp8, apply_gemv
from workloads.layers.memory import apply_memory
from workloads.layers.moe_apply import (
    MOE_LAYER_FUNCTIONS,
    apply_fp8_experts,
    apply_grouped_experts,
)
from workloads.layers.precision import apply_eager_baseline, apply_tf32
from workloads.layers.serving import apply_fp8_kv, apply_paged, apply_speculative
from workloads.requirements import facts_from_torch, first_unmet

LayerApply = Callable[[Workload, torch.device], "str | None"]

APPLY_FUNCTIONS: dict[str, LayerApply] = {
    "L0": apply_eager_baseline,
    "L1": apply_tf32,
    "L2": apply_memory,
    "L3": apply_attention,
    "L4": apply_graphs,
    "L5": apply_compile,
    "L5-fp8": apply_fp8,
    "L5-gemv": apply_gemv,
    "L6-fp8kv": apply_fp8_kv,
    "L6-paged": apply_paged,
    "L6-spec": apply_speculative,
    "L5-moe-fp8": apply_fp8_experts,
    "L6-moe-grouped": apply_grouped_experts,
}

# Per-workload implementations of a catalog layer, where the generic one does not fit.
WORKLOAD_APPLY_FUNCTIONS: dict[str, dict[str, LayerApply]] = {
    "moe": MOE_LAYER_FUNCTIONS,
    "gptoss": MOE_LAYER_FUNCTIONS,
}


def apply_function(name: str, workload_name: str) -> LayerApply | None:
    return WORKLOAD_APPLY_FUNCTIONS.get(workload_name, {}).get(name) or APPLY_FUNCTIONS.get(name)


@dataclass
class LayerOutcome:
    name: str
    applied: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def apply_layers(names: list[str], workload: Workload, device: torch.device,
                 outcomes: list[LayerOutcome]) -> None:
    """Apply ``names`` in order, appending one outcome each to ``outcomes`` (the caller keeps
    the list so a failed run still reports what was applied). Raises WorkbenchError on the
    first layer that cannot be applied; later layers are recorded as not applied."""
    for index, name in enumerate(names):
        info = catalog.get_layer(name)
        reason = None
        if info.applies_to and workload.name not in info.applies_to:
            reason = f"does not apply to workload {workload.name!r}"
        elif apply_function(name, workload.name) is None:
            reason = "listed in the catalog but not implemented"
        else:
            reason = first_unmet(info.requires, facts_from_torch(device))
        if reason and getattr(workload, "skip_unmet_layers", False) \
                and not reason.startswith("listed in the catalog"):
            outcomes.append(LayerOutcome(name, False, reason))
            continue
        if reason:
            outcomes.append(LayerOutcome(name, False, reason))
            outcomes.extend(LayerOutcome(later, False, f"not applied: {name} failed")
                            for later in names[index + 1:])
            raise WorkbenchError(f"layer {name} ({info.title}) cannot run: {reason}")
        apply = apply_function(name, workload.name)
        assert apply is not None  # checked above
        outcomes.append(LayerOutcome(name, True, apply(workload, device)))


def with_skipped(outcomes: list[LayerOutcome], skipped: dict[str, str]) -> list[LayerOutcome]:
    """``outcomes`` plus one not-applied outcome per layer a range skipped (its reason), in
    catalog order (level, name), so the Layers table reads like the stack."""
    merged = list(outcomes) + [LayerOutcome(name, False, reason)
                               for name, reason in skipped.items()
                               if name not in {o.name for o in outcomes}]

    def order(outcome: LayerOutcome) -> tuple[int, str]:
        info = catalog.LAYERS.get(outcome.name)
        return (info.level if info else 99, outcome.name)

    return sorted(merged, key=order)
