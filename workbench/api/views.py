"""What the app's screens show, shaped from the core's results (headless: pandas only when a
view is built). The Results screen reads an ``AnalysisView``, the Diff tab a ``DiffView``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Roof:
    name: str
    kind: str  # "compute" (FLOP/s) | "memory" (bytes/s)
    value: float


@dataclass
class AnalysisView:
    """What the Results screen shows; built from workbench.api.pipeline.analysis.RunAnalysis."""

    source: str | None = None  # artifact kind: kineto | ncu_csv | ncu_rep | nsys_sqlite
    device_name: str | None = None  # the GPU the artifact was recorded on, where known
    kernels: Any = None  # KernelTable (DataFrame) or None
    categories: Any = None  # DataFrame: category, count, total_ns, share
    top_kernels: Any = None
    cpu_ops: Any = None  # DataFrame: name, count, total_ns, mean_ns, flops (torch traces)
    roofline: Any = None  # DataFrame of points (one per kernel) or None
    roofs: list[Roof] = field(default_factory=list)
    budget: Any = None  # analyzers.sol_budget.SolBudget or None
    advice: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    raw: Any = None  # the core's RunAnalysis, for the LLM request payload


@dataclass
class DiffView:
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str = "n/a"
    category_deltas: Any = None
    kernel_deltas: Any = None
    warnings: list[str] = field(default_factory=list)
    figure: str = "latency median"  # what the speedup compares
    baseline_ms: float | None = None
    candidate_ms: float | None = None
    noise_floor_pct: float | None = None  # None: no repeats, no noise estimate
    baseline_cv_pct: float | None = None
    candidate_cv_pct: float | None = None
    verdict_reason: str | None = None
    comparability: str | None = None  # analyzers.diff_comparability.Comparability.summary()
    per_step: bool = False
    raw: Any = None  # the API's DiffResult, for the export (the file `diff --export` writes)


def _pick(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def normalize_ceilings(ceilings: Any) -> list[Roof]:
    """analyzers.ceilings.Ceilings (peak_flops per precision, dram_bw) -> roofs to draw."""
    if ceilings is None:
        return []
    if isinstance(ceilings, (list, tuple)):
        return [r for r in ceilings if isinstance(r, Roof)]
    roofs = [Roof(str(name), "compute", float(value))
             for name, value in (_pick(ceilings, "peak_flops") or {}).items()
             if isinstance(value, (int, float)) and value > 0]
    bandwidth = _pick(ceilings, "dram_bw")
    if isinstance(bandwidth, (int, float)) and bandwidth > 0:
        roofs.append(Roof("DRAM", "memory", float(bandwidth)))
    return roofs


# analyzers.roofline.points_frame column -> the name the Roofline tab reads
_POINT_COLUMNS = {"arithmetic_intensity": "intensity", "achieved_flops_per_s": "flops_per_s",
                  "achieved_bytes_per_s": "bytes_per_s", "total_ns": "dur_ns"}


def roofline_points(roofline: Any) -> pd.DataFrame | None:
    """The per-kernel points as a DataFrame (name, dur_ns, flops_per_s, bytes_per_s,
    intensity, bound, pct_of_roof, source), from a points frame or a Roofline result."""
    if roofline is None:
        return None
    import pandas as pd  # not at import time: the app's first paint must not wait for pandas

    if hasattr(roofline, "kernels") and not isinstance(roofline, pd.DataFrame):
        frame = pd.DataFrame(roofline.kernels)  # an analyzers.roofline.Roofline
    else:
        frame = pd.DataFrame(roofline)
    return frame.rename(columns={k: v for k, v in _POINT_COLUMNS.items() if k in frame.columns})


def to_analysis_view(analysis: Any) -> AnalysisView:
    roofline = _pick(analysis, "roofline")
    ceilings = _pick(analysis, "ceilings")
    if ceilings is None and roofline is not None and hasattr(roofline, "ceilings"):
        ceilings = roofline.ceilings
    return AnalysisView(
        source=_pick(analysis, "source"),
        device_name=_pick(analysis, "device_name"),
        kernels=_pick(analysis, "kernels"),
        categories=_pick(analysis, "categories"),
        top_kernels=_pick(analysis, "top_kernels"),
        cpu_ops=_pick(analysis, "cpu_ops"),
        roofline=roofline_points(roofline),
        roofs=normalize_ceilings(ceilings),
        budget=_pick(analysis, "budget"),
        advice=list(_pick(analysis, "advice") or []),
        notes=[str(n) for n in (_pick(analysis, "notes") or [])],
        raw=analysis,
    )


def to_diff_view(diff: Any) -> DiffView:
    comparability = _pick(diff, "comparability")
    summary = getattr(comparability, "summary", None)
    return DiffView(
        speedup=_pick(diff, "speedup"),
        ci_low=_pick(diff, "ci_low"),
        ci_high=_pick(diff, "ci_high"),
        verdict=str(_pick(diff, "verdict") or "n/a"),
        category_deltas=_pick(diff, "categories", _pick(diff, "category_deltas")),
        kernel_deltas=_pick(diff, "kernels", _pick(diff, "kernel_deltas")),
        warnings=[str(w) for w in (_pick(diff, "warnings") or [])],
        figure=str(_pick(diff, "figure") or "latency median"),
        baseline_ms=_pick(diff, "baseline_ms"),
        candidate_ms=_pick(diff, "candidate_ms"),
        noise_floor_pct=_pick(diff, "noise_floor_pct"),
        baseline_cv_pct=_pick(_pick(diff, "baseline"), "latency_cv_pct"),
        candidate_cv_pct=_pick(_pick(diff, "candidate"), "latency_cv_pct"),
        verdict_reason=_pick(diff, "verdict_reason"),
        comparability=summary() if callable(summary) else None,
        per_step=bool(_pick(diff, "per_step")),
    )
