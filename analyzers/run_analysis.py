"""Compose the per-run analyses into one RunAnalysis (pure: tables in, dataclass out).

This is the one place that decides what an analysis of a run or artifact holds; the report,
the JSON export and the app all render a RunAnalysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analyzers.breakdown import (
    category_breakdown,
    cpu_op_breakdown,
    kernel_breakdown,
    op_breakdown,
    stream_breakdown,
)
from analyzers.ceilings import Ceilings
from analyzers.overlap import distributed_analysis
from analyzers.roofline import roofline
from analyzers.sol_budget import SolBudget, sol_budget
from analyzers.step_timeline import step_timeline
from analyzers.temporal import temporal_profile, within_steps
from profilers.parsers.schema import Col


@dataclass
class RunAnalysis:
    source: str | None = None  # artifact kind: kineto | ncu_csv | ncu_rep | nsys_sqlite
    device_name: str | None = None
    kernels: pd.DataFrame | None = None  # the KernelTable
    kernel_metrics: pd.DataFrame | None = None  # ncu per-kernel metrics, if any
    categories: pd.DataFrame | None = None
    top_kernels: pd.DataFrame | None = None
    ops: pd.DataFrame | None = None  # GPU time by parent CPU op
    cpu_ops: pd.DataFrame | None = None  # CPU ops by inclusive wall time (torch traces)
    streams: pd.DataFrame | None = None
    temporal: Any = None
    roofline: pd.DataFrame | None = None  # one row per kernel name (analyzers.roofline)
    roofline_launches: pd.DataFrame | None = None  # one row per KernelTable row
    roofline_aggregate: Any = None
    budget: SolBudget | None = None  # the step's speed-of-light budget
    ceilings: Ceilings | None = None
    advice: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    distributed: Any = None  # analyzers.overlap.DistributedAnalysis for multi-rank traces
    runtime: pd.DataFrame | None = None  # CUDA runtime calls (advice: syncs inside the steps)
    regions: Any = None  # analyzers.regions.RegionAnalysis: GPU time by NVTX / annotation range

    @property
    def kernel_total_ns(self) -> int | None:
        if self.kernels is None or (len(self.kernels) and self.kernels[Col.DUR_NS].isna().all()):
            return None  # kernels without any known duration: the total is unknown, not 0
        return int(self.kernels[Col.DUR_NS].sum())

    @property
    def kernel_count(self) -> int:
        return 0 if self.kernels is None else len(self.kernels)

    def kind_totals(self) -> dict[str, int]:
        """GPU time by activity kind (kernel / memcpy / memset), exact ns."""
        if self.kernels is None or len(self.kernels) == 0:
            return {}
        dur = self.kernels[Col.DUR_NS]
        if not pd.api.types.is_integer_dtype(dur.dtype):
            grouped = self.kernels.groupby(self.kernels[Col.KIND].astype(str))["dur_ns"].sum(
                min_count=1)
            return {str(k): int(v) for k, v in grouped.items() if not pd.isna(v)}
        from analyzers.distinct import value_codes

        # Integer ns summed per distinct kind (a few), not a string per launch: the groups of
        # grouping by ``kind.astype(str)`` (a missing kind is no group), in its order.
        codes, values = value_codes(self.kernels[Col.KIND])
        known = dur.notna().to_numpy() & (codes >= 0)
        codes, ns = codes[known], dur.to_numpy(dtype="int64", na_value=0)[known]
        totals: dict[str, int] = {}
        for code in np.flatnonzero(np.bincount(codes, minlength=len(values))).tolist():
            text = str(values[code])
            totals[text] = totals.get(text, 0) + int(ns[codes == code].sum())
        return dict(sorted(totals.items()))


def analyze_tables(source: str, kernels: pd.DataFrame, kernel_metrics: pd.DataFrame | None = None,
                   runtime: pd.DataFrame | None = None, ops: pd.DataFrame | None = None,
                   top: int = 15, ceilings: Ceilings | None = None,
                   device_name: str | None = None, precision: str | None = None,
                   annotations: pd.DataFrame | None = None, workload: str | None = None,
                   layers: Sequence[str] = (), device_kind: str | None = None) -> RunAnalysis:
    """``annotations``: the trace's annotation ranges (name, start_ns, dur_ns, optional kind):
    its ProfilerStep#N / aiperf:step ranges delimit the budget's steps. ``workload``,
    ``layers``, ``device_kind``: the run's, so the budget names only layers this run can add
    (None for an artifact from elsewhere: no layer is named)."""
    from analyzers.advice.steps import shared_step_timelines

    with shared_step_timelines():  # the budget and the advice find the same steps once
        return _analyze_tables(source, kernels, kernel_metrics, runtime, ops, top, ceilings,
                               device_name, precision, annotations, workload, layers,
                               device_kind)


def _analyze_tables(source: str, kernels: pd.DataFrame, kernel_metrics: pd.DataFrame | None,
                    runtime: pd.DataFrame | None, ops: pd.DataFrame | None, top: int,
                    ceilings: Ceilings | None, device_name: str | None, precision: str | None,
                    annotations: pd.DataFrame | None, workload: str | None,
                    layers: Sequence[str], device_kind: str | None) -> RunAnalysis:
    analysis = RunAnalysis(source=source, device_name=device_name, kernels=kernels,
                           kernel_metrics=kernel_metrics, ceilings=ceilings, runtime=runtime)
    if ops is not None and len(ops):
        analysis.cpu_ops = cpu_op_breakdown(ops, top=top)
    analysis.distributed = distributed_analysis(kernels, ops)
    if len(kernels) == 0:
        analysis.notes.append("the artifact holds no GPU kernels"
                              + (" (a CPU run: see the CPU ops)" if analysis.cpu_ops is not None else ""))
        return analysis
    if kernels[Col.DUR_NS].isna().all():  # e.g. an ncu CSV without the duration metric
        analysis.notes.append("no GPU activity has a known duration: GPU time is unknown, not 0")
        return attach_advice(analysis)
    analysis.categories = category_breakdown(kernels)
    analysis.top_kernels = kernel_breakdown(kernels, top=top)
    if kernels[Col.OP_NAME].notna().any():
        analysis.ops = op_breakdown(kernels)
    analysis.streams = stream_breakdown(kernels)
    timeline = None
    if kernels[Col.START_NS].notna().any():
        if source not in ("ncu_csv", "ncu_rep"):  # ncu replays kernels alone: no steps
            timeline = step_timeline(kernels, annotations=annotations, ops=ops, runtime=runtime)
        analysis.temporal = within_steps(temporal_profile(kernels, runtime=runtime), timeline)
    if ceilings is None:
        analysis.notes.append(f"no roofline: no ceilings known for device {device_name!r} "
                              "(run `aiperf-workbench calibrate` on it)")
        return attach_advice(analysis)
    result = roofline(kernels, ceilings, metrics=kernel_metrics, precision=precision)
    analysis.roofline = result.kernels
    analysis.roofline_launches = result.launches
    analysis.roofline_aggregate = result.step
    analysis.notes += result.notes
    if source in ("ncu_csv", "ncu_rep"):
        analysis.notes.append("no speed-of-light budget: ncu replays each kernel alone, so the "
                              "artifact has no step timeline (a torch or nsys run has one)")
    elif timeline is not None:
        analysis.budget = sol_budget(result.launches, timeline, ceilings, workload=workload,
                                     layers=layers, device_kind=device_kind,
                                     device_name=device_name)
    return attach_advice(analysis)


def attach_advice(analysis: RunAnalysis, record: Any = None) -> RunAnalysis:
    """Fill ``analysis.advice`` with the ranked rule findings (analyzers.advice); with the run
    record the rules also read metrics, parity, telemetry, layers and router health."""
    from analyzers.advice import advise

    notes: list[str] = []
    analysis.advice = advise(analysis, record, notes=notes)
    analysis.notes += [n for n in notes if n not in analysis.notes]
    return analysis
