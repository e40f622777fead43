"""The one place the app calls the core. Signature changes in the core are one edit here.

The app holds a ``Services`` object (injected through ``make_app(..., services=...)``; tests pass
fakes). Every function here may block: screens call them from thread workers only. Core
modules (and pandas) are imported lazily inside the functions so that importing the app stays
cheap and never pulls in torch (the workloads run in a child process).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sessions.records import RunRecord
from sessions.store import SessionStore
from workloads.spec import RunSpec

if TYPE_CHECKING:
    import pandas as pd

EventSink = Callable[[dict[str, Any]], None]


# ---- device probe (torch-free) -------------------------------------------------------------
@dataclass(frozen=True)
class DeviceProbe:
    """What the app can learn about the GPUs without torch (through NVML, if present)."""

    cuda: bool = False
    gpu_count: int = 0
    name: str | None = None
    cc: tuple[int, int] | None = None
    memory_bytes: int | None = None
    reason: str | None = None  # why cuda is False


def probe_devices() -> DeviceProbe:
    try:
        import pynvml  # nvidia-ml-py; optional at run time
    except ImportError:
        return DeviceProbe(reason="NVML (nvidia-ml-py) is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return DeviceProbe(reason=f"no NVIDIA driver ({type(exc).__name__})")
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        if count == 0:
            return DeviceProbe(reason="NVML sees no GPU")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        mem = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        return DeviceProbe(cuda=True, gpu_count=count, name=name, cc=(int(major), int(minor)),
                           memory_bytes=mem)
    except Exception as exc:
        return DeviceProbe(reason=f"NVML query failed ({type(exc).__name__})")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def unmet_requirement(requirement: str, probe: DeviceProbe) -> str | None:
    """Why ``requirement`` (a catalog string) is not met here, or None when it is (or may be)."""
    # Short reasons: the setup screen shows why there is no GPU once, on its device line.
    if requirement == "cuda":
        return None if probe.cuda else "needs a CUDA GPU"
    if requirement.startswith("cc>="):
        want = tuple(int(p) for p in requirement[4:].split("."))
        if not probe.cuda or probe.cc is None:
            return f"needs a GPU with cc>={requirement[4:]}"
        if probe.cc < want:
            return f"needs cc>={requirement[4:]}; {probe.name} is cc {probe.cc[0]}.{probe.cc[1]}"
        return None
    if requirement == "multi_gpu":
        return None if probe.gpu_count >= 2 else f"needs 2+ GPUs; found {probe.gpu_count}"
    if requirement == "triton":
        return None if importlib.util.find_spec("triton") else "needs triton (not installed)"
    if requirement == "flex_attention":
        version = _dist_version("torch")
        if version is None:
            return "needs torch>=2.5 (torch not installed)"
        major, minor = (int("".join(c for c in p if c.isdigit()) or 0) for p in version.split(".")[:2])
        return None if (major, minor) >= (2, 5) else f"needs torch>=2.5; found {version}"
    return None  # unknown requirements are checked in the child, where torch is


def layer_blocker(requires: tuple[str, ...], probe: DeviceProbe) -> str | None:
    for requirement in requires:
        reason = unmet_requirement(requirement, probe)
        if reason:
            return reason
    return None


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)  # reads metadata; does not import the package
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- memory estimate -----------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: float
    kv_cache_bytes: float
    activations_bytes: float
    source: str  # where the estimate came from

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activations_bytes


def estimate_memory(spec: RunSpec) -> MemoryEstimate | None:
    """workloads.estimate's analytic estimate (torch-free); None where it has none."""
    if spec.workload != "dense":
        return None
    from workloads.estimate import estimate_for_preset

    result = estimate_for_preset(spec.preset, spec.params)
    return MemoryEstimate(weights_bytes=float(result.weights_bytes),
                          kv_cache_bytes=float(result.kv_cache_bytes),
                          activations_bytes=float(result.activations_bytes),
                          source="workloads.estimate")


# ---- analysis and diff views ---------------------------------------------------------------
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


# ---- the core front doors ------------------------------------------------------------------
def _core_run(spec, store, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
    from profilers.runner import run

    return run(spec, store, on_event=on_event, cancel=cancel)


def _core_load_run_analysis(store, record):  # type: ignore[no-untyped-def]
    from workbench.api.pipeline.analysis import load_run_analysis

    return load_run_analysis(store, record)


def _core_diff_runs(store, baseline, candidate):  # type: ignore[no-untyped-def]
    """The CLI's diff (workbench.api.pipeline.diff_sides): same sides, per-step kernel deltas and
    comparability, so Compare shows what `aiperf-workbench diff A B` prints."""
    from workbench.api.pipeline.diff_sides import diff_records

    return diff_records(store, baseline, candidate)


class Services:
    """Adapters over the core front doors; pass fakes with the core's signatures in tests."""

    def __init__(
        self,
        run: Callable[..., RunRecord] | None = None,
        load_run_analysis: Callable[[SessionStore, RunRecord], Any] | None = None,
        diff_runs: Callable[..., Any] | None = None,
        probe: Callable[[], DeviceProbe] | None = None,
        estimate: Callable[[RunSpec], MemoryEstimate | None] | None = None,
    ) -> None:
        self._run = run or _core_run
        self._load_run_analysis = load_run_analysis or _core_load_run_analysis
        self._diff_runs = diff_runs or _core_diff_runs
        self._probe = probe or probe_devices
        self._estimate = estimate or estimate_memory

    def run(self, spec: RunSpec, store: SessionStore, on_event: EventSink | None,
            cancel: threading.Event | None) -> RunRecord:
        """profilers.runner.run: blocks until the child ends; events arrive on this thread."""
        return self._run(spec, store, on_event=on_event, cancel=cancel)

    def load_analysis(self, store: SessionStore, record: RunRecord) -> AnalysisView:
        return to_analysis_view(self._load_run_analysis(store, record))

    def diff(self, store: SessionStore, baseline: RunRecord, candidate: RunRecord) -> DiffView:
        return to_diff_view(self._diff_runs(store, baseline, candidate))

    def probe(self) -> DeviceProbe:
        return self._probe()

    def llm_request(self, record: RunRecord, analysis: AnalysisView) -> dict[str, Any]:
        """The exact Messages API request `advise --llm` would send (shown before sending)."""
        from analyzers.advice.llm import LLMSettings
        from workbench.cli.cmd_advise import llm_request_for

        return llm_request_for(record, analysis.raw, LLMSettings().model)

    def llm_request_text(self, request: dict[str, Any]) -> str:
        from workbench.cli.cmd_advise import show_request

        return show_request(request)

    def llm_advice(self, store: SessionStore, record: RunRecord, analysis: AnalysisView,
                   request: dict[str, Any], on_text: Callable[[str], None]
                   ) -> tuple[Any, str | None]:
        """Send, stream chunks to on_text (worker thread), store the answer with the session.
        Returns (answer or None, one-line failure or None); the key is never stored."""
        from workbench.cli.cmd_advise import llm_advice_for_session

        return llm_advice_for_session(store, record, analysis.raw, request, on_text=on_text)

    def estimate(self, spec: RunSpec) -> MemoryEstimate | None:
        try:
            return self._estimate(spec)
        except Exception:  # an estimate is a hint; never block the setup screen on it
            return None


def default_services() -> Services:
    """The real core front doors."""
    return Services()
