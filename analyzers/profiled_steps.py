"""How many steps a run's kernel-level artifact covers, from its record (pure, torch-free)."""

from __future__ import annotations

from typing import Any

from workloads.spec import replays_kernels

DEFAULT_TORCH_PROFILE_STEPS = 3  # workloads/run.py DEFAULT_PROFILE_STEPS (no torch import here)


def profiled_steps(record: dict[str, Any]) -> float | None:
    """Steps the run's kernel artifact covers, where the spec says (None: unknown)."""
    if record.get("kind", "run") != "run":
        return None
    spec = record.get("spec") or {}
    profiler = spec.get("profiler")
    options = spec.get("profiler_options") or {}
    if profiler == "torch":
        steps = options.get("steps", DEFAULT_TORCH_PROFILE_STEPS)
        ok = isinstance(steps, (int, float)) and not isinstance(steps, bool) and steps > 0
        return float(steps) if ok else None
    if replays_kernels(profiler):
        repeat = spec.get("repeat")
        return float(repeat) if isinstance(repeat, int) and repeat > 0 else None
    return None
