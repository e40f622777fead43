"""Shared frame of the micro-workloads: one problem, a baseline variant and faster variants.

A micro-workload is selected by ``params["variant"]``; its parity guard is the same one the
model workloads use (``workloads.parity.compare``), with the baseline variant as the reference:
the runner's first ``parity_outputs`` call (no forced tokens: the L0 reference) computes the
baseline, the second (after the layers) the selected variant, so ``parity.reference`` "L0"
means "the baseline variant on the same inputs". The output tensor is compared as rows of
"logits" over its last dimension: max |candidate - reference| / max |reference| and the share
of rows whose argmax agrees.

``step`` runs the selected variant once. Facts known only after running (the step's own peak
memory, acceptance rates, ...) are collected in ``prepare`` and returned by ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from workloads.errors import WorkbenchError
from workloads.interface import ParityOutputs, Workload
from workloads.requirements import facts_from_torch, first_unmet

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_parity_outputs(output: torch.Tensor) -> ParityOutputs:
    """An output tensor [..., D] as one "step" of rows over D (what ``compare`` reads)."""
    rows = output.detach().float().reshape(1, -1, output.shape[-1])
    return ParityOutputs(rows, rows.argmax(-1))


def check_params(workload: str, params: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise WorkbenchError(f"unknown {workload} params: {', '.join(unknown)}",
                             f"known: {', '.join(known)}")


def positive_int(workload: str, params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkbenchError(f"{workload} param {key} must be a positive integer, got {value!r}")
    return value


def int_list(workload: str, value: Any, key: str) -> list[int]:
    """A list param given as a list or as text "1,2,4" (the CLI's --param form)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        numbers = [int(str(item).strip()) for item in items if str(item).strip()]
    except ValueError:
        raise WorkbenchError(f"{workload} param {key} must be integers like 1,2,4, "
                             f"got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise WorkbenchError(f"{workload} param {key} must be positive integers, got {value!r}")
    return numbers


def dtype_of(workload: str, name: Any) -> torch.dtype:
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise WorkbenchError(f"{workload}: unsupported dtype {name!r}",
                             f"choose one of: {', '.join(DTYPES)}") from None


def step_peak_memory(call: Callable[[], Any], device: torch.device) -> int | None:
    """Bytes the call allocates above what was resident before it (CUDA allocator peak);
    None on CPU, where no per-call allocator figure exists."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    call()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


class MicroWorkload(Workload):
    """Subclasses set ``name``, ``variants`` (name -> requirement strings), ``baseline`` and
    ``precision_of``, and implement ``setup``, ``run_variant`` and ``tokens_per_step``."""

    variants: dict[str, tuple[str, ...]] = {}
    baseline: str = ""
    default_variant: str = ""
    precision_of: dict[str, str] = {}

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        self.device, self.dtype, self.seed = device, dtype, seed
        self.params = dict(params)
        variant = params.get("variant", self.default_variant)
        if variant not in self.variants:
            raise WorkbenchError(f"unknown {self.name} variant {variant!r}",
                                 f"choose one of: {', '.join(self.variants)}")
        reason = first_unmet(self.variants[variant], facts_from_torch(device))
        if reason:
            raise WorkbenchError(f"{self.name} variant {variant} cannot run: {reason}",
                                 f"the baseline variant {self.baseline!r} runs anywhere")
        self.variant = variant
        self.step_name = variant
        self.compute_precision = self.precision_of.get(variant, "fp32")
        self.facts: dict[str, Any] = {"variant": variant, "baseline": self.baseline}
        self.setup(params, seed)

    def setup(self, params: dict[str, Any], seed: int) -> None:
        raise NotImplementedError

    def run_variant(self, variant: str, inputs: Any) -> torch.Tensor:
        raise NotImplementedError

    def reference_output(self, inputs: Any) -> torch.Tensor:
        """The baseline's output for parity; subclasses may compute it in pieces (same math
        per row) where the whole baseline would not fit in memory."""
        return self.run_variant(self.baseline, inputs)

    def parity_outputs(self, inputs: Any, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        if forced_tokens is None:
            return as_parity_outputs(self.reference_output(inputs))
        return as_parity_outputs(self.run_variant(self.variant, inputs))

    def prepare(self, inputs: Any) -> None:
        self.facts["step_peak_mem_bytes"] = step_peak_memory(
            lambda: self.run_variant(self.variant, inputs), self.device)

    def step(self, inputs: Any) -> torch.Tensor:
        return self.run_variant(self.variant, inputs)

    def extra(self) -> dict[str, Any]:
        return self.facts
