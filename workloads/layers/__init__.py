"""Layer registry: catalog layer name -> the function that applies it to a built workload.

An apply function takes (workload, device), changes the workload's model or the process math
settings, and returns None or a short note (e.g. "no effect on CPU"). Later layers (fused QKV,
static KV cache, SDPA/flash, CUDA graphs, torch.compile + FP8, paged KV, speculative decoding)
are added as entries here and in ``catalog.LAYERS``. ``apply_layers`` checks each layer's
requirements first; an unmet one is recorded (applied=False, reason) and fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.interface import Workload
from workloads.layers.precision import apply_eager_baseline, apply_tf32
from workloads.requirements import first_unmet

LayerApply = Callable[[Workload, torch.device], "str | None"]

APPLY_FUNCTIONS: dict[str, LayerApply] = {
    "L0": apply_eager_baseline,
    "L1": apply_tf32,
}


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
        elif name not in APPLY_FUNCTIONS:
            reason = "listed in the catalog but not implemented"
        else:
            reason = first_unmet(info.requires, device)
        if reason:
            outcomes.append(LayerOutcome(name, False, reason))
            outcomes.extend(LayerOutcome(later, False, f"not applied: {name} failed")
                            for later in names[index + 1:])
            raise WorkbenchError(f"layer {name} ({info.title}) cannot run: {reason}")
        note = APPLY_FUNCTIONS[name](workload, device)
        outcomes.append(LayerOutcome(name, True, note))
