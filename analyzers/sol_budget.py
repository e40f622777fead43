"""The step's speed-of-light budget: the time one step would take if every kernel ran at its
roof (this device's calibrated ceilings when cached, else the spec sheet), against the measured
step, with the gap split by kernel (or class), by idle/launch gaps and by host time, ranked by
the microseconds each could recover.

Data types first (the advice, the report, the JSON export and the app read them); the builder
lives below them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetLine:
    kind: str  # kernel | category | idle | host | unknown
    name: str  # kernel name, category, "idle gaps", "host", "unknown FLOPs/bytes"
    category: str | None
    launches: int | None  # per step
    measured_ns: int  # per step
    sol_ns: int | None  # the same work at its roof; None when its FLOPs/bytes are unknown
    lost_ns: int | None  # measured_ns - sol_ns: what could be recovered; None when unknown
    share_of_step: float | None  # lost_ns / step_ns
    bound: str | None  # memory | compute
    pct_of_roof: float | None  # percent
    remedy: str | None  # a key of analyzers.layer_choice.REMEDY_LAYERS
    layer: str | None  # analyzers.layer_choice.layer_for(remedy, ...) for this run, or None
    why: str  # one sentence: what it moves / computes, at what rate against which roof
    source: str  # inventory | op_shapes | ncu | estimate | trace (idle / host lines)


@dataclass(frozen=True)
class SolBudget:
    step_ns: int  # measured wall time of one step (mean over the profiled steps)
    steps: int  # profiled steps the figures are averaged over
    kernel_ns: int  # GPU busy time per step (union of intervals)
    sol_ns: int  # the step at speed of light: sum of the kernels' times at their roofs
    idle_ns: int  # GPU idle inside the step (gaps between profiled steps excluded)
    host_ns: int | None  # host time not overlapped with GPU work, where known
    coverage: float | None  # share of kernel time whose FLOPs and bytes are known
    ceilings_source: str  # measured | spec
    device_name: str | None
    lines: tuple[BudgetLine, ...]  # ranked by lost_ns, largest first
    notes: tuple[str, ...] = ()
