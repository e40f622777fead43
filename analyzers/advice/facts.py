"""The facts the advice rules read, gathered once from a RunAnalysis and (optionally) the run
record: GPU time by category, the kernel table, the timeline and its profiled steps, the
roofline and the speed-of-light budget, the device and its ceilings, and the record's workload,
shape, layers, metrics with spread, parity, telemetry and MoE router health. Pure.

Per-step figures divide by the profiled steps the record names (or the steps found in the
trace); the measured step is the budget's, else the timed latency, else the median step's GPU
window."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from analyzers.advice.steps import StepTimeline, step_timeline
from analyzers.ceilings import Ceilings, spec_ceilings
from analyzers.distinct import value_codes
from analyzers.layer_choice import has_remedy, layer_for
from analyzers.profiled_steps import profiled_steps
from profilers.parsers.schema import Col
from workloads.spec import replays_kernels

# Compute capability by device family, for artifacts that do not carry it (env.cc wins).
_CC_BY_NAME = [
    (re.compile(r"b200|b100|gb200", re.I), 10.0), (re.compile(r"h100|h200|h800|gh200", re.I), 9.0),
    (re.compile(r"l40|l4\b|rtx 40|ada", re.I), 8.9), (re.compile(r"a100|a800|a30\b", re.I), 8.0),
    (re.compile(r"a10\b|a40|rtx 30", re.I), 8.6), (re.compile(r"v100", re.I), 7.0),
    (re.compile(r"t4\b", re.I), 7.5),
]


@dataclass
class Facts:
    source: str  # "session <id> (<artifact>)" or the artifact's name: cited in every evidence
    kernels: pd.DataFrame | None = None
    total_ns: int | None = None  # sum of GPU activity durations
    category_ns: dict[str, int] = field(default_factory=dict)
    category_share: dict[str, float] = field(default_factory=dict)
    top_kernels: pd.DataFrame | None = None
    temporal: Any = None
    roofline: pd.DataFrame | None = None
    roofline_aggregate: Any = None
    ceilings: Ceilings | None = None
    kernel_metrics: pd.DataFrame | None = None
    device_name: str | None = None
    device_kind: str | None = None  # cuda | cpu | None (unknown)
    cc: float | None = None
    ranks: int = 1
    step: str | None = None  # decode | prefill | ...
    dtype: str | None = None
    layers: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    router: dict[str, Any] = field(default_factory=dict)
    workload: str | None = None
    profiler: str | None = None
    shape: dict[str, Any] = field(default_factory=dict)  # the child's resolved model shape
    steps: float | None = None  # profiled steps the kernel artifact covers
    timeline: StepTimeline | None = None  # the steps found in the trace
    budget: Any = None  # analyzers.sol_budget.SolBudget, when the analysis has one
    step_ns: float | None = None  # the measured step (wall), see step_source
    step_source: str = ""
    scope: str | None = None  # what the kernel artifact covers when not whole steps (ncu)

    @cached_property
    def op_names(self) -> tuple[Any, Any]:
        """(codes, distinct values) of the kernels' parent-op names, found once for all the
        rules that test them (an object column: hashing it is the cost)."""
        assert self.kernels is not None
        return value_codes(self.kernels[Col.OP_NAME])

    @property
    def per(self) -> str:
        """What a per-step figure is per: a step, or the profiled scope (ncu's one block)."""
        return f"profiled {self.scope}" if self.scope else "step"

    @property
    def has_kernels(self) -> bool:
        return self.kernels is not None and len(self.kernels) > 0 and bool(self.total_ns)

    @property
    def timed(self) -> bool:
        """The record's latency is a timing (not measured under kernel replay)."""
        median = (self.metrics.get("latency_ms") or {}).get("median")
        return isinstance(median, (int, float)) and not replays_kernels(self.profiler)

    def layer(self, remedy: str) -> str | None:
        """The layer to name for ``remedy`` on this run (analyzers.layer_choice); None for an
        artifact from elsewhere, whose model the workbench's layers do not build."""
        if not self.workload:
            return None
        return layer_for(remedy, self.workload, self.layers, self.device_kind)

    def has(self, remedy: str) -> bool:
        return has_remedy(remedy, self.layers)

    def per_step_ns(self, total_ns: float) -> float | None:
        """A kernel-table total per profiled step; None when the step count is unknown."""
        return total_ns / self.steps if self.steps else None

    def us(self, total_ns: float) -> float | None:
        """A kernel-table total as microseconds per step (None: unknown step count)."""
        per = self.per_step_ns(total_ns)
        return None if per is None else per / 1e3


def _record_dict(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    if isinstance(record, dict):
        return record
    to_dict = getattr(record, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def compute_capability(env: dict[str, Any], device_name: str | None) -> float | None:
    cc = env.get("cc")
    if isinstance(cc, (list, tuple)) and len(cc) == 2:
        return float(cc[0]) + float(cc[1]) / 10.0
    if isinstance(cc, (int, float)) and not isinstance(cc, bool):
        return float(cc)
    if isinstance(cc, str):
        try:
            return float(cc)
        except ValueError:
            pass
    for pattern, value in _CC_BY_NAME:
        if device_name and pattern.search(device_name):
            return value
    return None


def build_facts(analysis: Any, record: Any = None, source: str | None = None) -> Facts:
    """Facts of one analyzed run. ``analysis`` is a RunAnalysis (or None for a run without a
    kernel artifact); ``record`` a RunRecord or its dict; ``source`` names where the numbers
    came from (default: the session id and its profiler artifact)."""
    data = _record_dict(record)
    env = data.get("env") or {}
    spec = data.get("spec") or {}
    details = data.get("details")
    workload_details: dict[str, Any] = details if isinstance(details, dict) else {}
    router = workload_details.get("router") or {}
    if source is None:
        artifacts = data.get("artifacts") or {}
        artifact = next((artifacts[r] for r in ("ncu_csv", "nsys_sqlite", "trace", "ncu_rep")
                         if r in artifacts), None)
        run_id = data.get("id")
        if run_id:
            name = str(artifact).replace("\\", "/").rsplit("/", 1)[-1] if artifact else None
            source = f"session {run_id}" + (f" ({name})" if name else "")
        else:
            source = getattr(analysis, "source", None) or "analysis"
    kt = getattr(analysis, "kernels", None)
    device_name = getattr(analysis, "device_name", None) or env.get("device_name")
    shape = workload_details.get("shape")
    facts = Facts(
        source=source, kernels=kt if kt is not None and len(kt) else None,
        top_kernels=getattr(analysis, "top_kernels", None),
        temporal=getattr(analysis, "temporal", None),
        roofline=getattr(analysis, "roofline", None),
        roofline_aggregate=getattr(analysis, "roofline_aggregate", None),
        ceilings=getattr(analysis, "ceilings", None) or spec_ceilings(device_name),
        kernel_metrics=getattr(analysis, "kernel_metrics", None),
        device_name=device_name,
        device_kind=env.get("device_kind") or ("cuda" if kt is not None and len(kt) else None),
        cc=compute_capability(env, device_name),
        step=(data.get("metrics") or {}).get("step"),
        dtype=(shape or {}).get("dtype") or (spec.get("params") or {}).get("dtype"),
        layers=tuple(spec.get("layers") or ()),
        metrics=data.get("metrics") or {}, parity=data.get("parity") or {},
        telemetry=data.get("telemetry") or {}, env=env,
        router=router if isinstance(router, dict) else {},
        workload=spec.get("workload") or None, profiler=spec.get("profiler") or None,
        shape=shape if isinstance(shape, dict) else {},
        budget=getattr(analysis, "budget", None),
        scope=_scope(workload_details),
    )
    if facts.kernels is not None:
        facts.total_ns = int(facts.kernels[Col.DUR_NS].sum())
        cats = getattr(analysis, "categories", None)
        if cats is not None:
            for row in cats.itertuples():
                facts.category_ns[str(row.category)] = int(row.total_ns)
                if row.share is not None and row.share == row.share:
                    facts.category_share[str(row.category)] = float(row.share)
        ranks = facts.kernels[Col.RANK].dropna()
        facts.ranks = max(int(ranks.nunique()), 1) if len(ranks) else 1
        facts.timeline = step_timeline(facts.kernels, getattr(analysis, "runtime", None))
    facts.steps = profiled_steps(data) if data else None
    if facts.steps is None and facts.timeline is not None:
        facts.steps = float(facts.timeline.steps)
    _measured_step(facts)
    return facts


def _scope(workload_details: dict[str, Any]) -> str | None:
    scope = workload_details.get("profile_scope")
    if isinstance(scope, dict) and scope.get("what") and scope.get("scope") != "step":
        return str(scope["what"])
    return None


def _measured_step(f: Facts) -> None:
    # The timed repeats first: they ran without the profiler, whose host-side recording
    # stretches an eager step (the 8B L0 step: 28.7 ms timed, 89 ms under torch.profiler), so
    # a budget step taken under it would promise more than the user's step holds.
    budget_step = getattr(f.budget, "step_ns", None)
    if f.timed:
        f.step_ns = float(f.metrics["latency_ms"]["median"]) * 1e6
        f.step_source = "median step latency"
    elif isinstance(budget_step, (int, float)) and budget_step > 0:
        f.step_ns, f.step_source = float(budget_step), "the speed-of-light budget's step"
    elif f.timeline is not None:
        f.step_ns = float(f.timeline.wall_ns[f.timeline.median_step])
        f.step_source = "GPU window of the median profiled step"
