"""The stored record of a session, typed: what ran (the RunSpec itself), how it ended (a
``RunStatus``), and what it measured, each result field flat on the record.

A session is a workbench run (kind ``run``), an analysis of artifacts from elsewhere
(``analysis``: no spec, the analyzed ``inputs``) or a perplexity check (``eval``). The child's
result.json fills ``metrics``, ``parity``, ``env``, ``layers_applied`` and ``details`` (the
workload's own report: model shape, router health, operation inventory, profiled scope, ...).

``to_dict`` is the stored layout (record.json, ``show``, JSON exports; schema 2);
``from_dict`` also reads the first layout, where the child's report sat in ``extra.extra``
and an analysis session's inputs in its spec (``_from_layout_1``), so older homes still open.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

from workloads.spec import RunSpec

RECORD_SCHEMA = 2


class RunStatus(str, Enum):
    """How a session stands. ``pending``/``running`` only while its owner process lives."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # its owner process died before it finished

    def __str__(self) -> str:  # f-strings print the value on every Python (3.11 changed it)
        return self.value

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @classmethod
    def parse(cls, value: Any) -> RunStatus:
        """A stored status; anything unknown (a damaged record) reads as failed."""
        try:
            return cls(value)
        except ValueError:
            return cls.FAILED


ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
STATUSES = tuple(s.value for s in RunStatus)


class SessionKind(str, Enum):
    RUN = "run"  # a workload run by the workbench
    ANALYSIS = "analysis"  # artifacts from elsewhere, analyzed and saved (`analyze --save`)
    EVAL = "eval"  # a perplexity check over layer sets (`eval`)

    def __str__(self) -> str:
        return self.value


class LatencyStats(TypedDict, total=False):
    median: float | None
    mean: float | None
    p10: float | None
    p90: float | None
    p99: float | None
    stdev: float | None  # sample stdev; None with one sample
    min: float | None
    max: float | None
    n: int | None
    samples: list[float]


class Metrics(TypedDict, total=False):
    """What the child measured (workloads.protocol); missing is None, never 0."""

    latency_ms: LatencyStats
    step: str | None  # decode | prefill | generate | the micro-workload's step
    tokens_per_step: float | None
    tokens_per_s: float | None
    prefill_ms: float | None
    prefill_tokens_per_s: float | None
    ttft_ms: float | None
    tpot_ms: float | None
    peak_mem_bytes: float | None
    flops_per_step: float | None
    bytes_per_step: float | None
    achieved_tflops: float | None
    achieved_gb_s: float | None


class Parity(TypedDict, total=False):
    """The run against its L0 reference (workloads.parity)."""

    reference: str
    precision: str
    max_rel_err: float | None
    top1_agreement: float | None
    tolerance: Any  # {max_rel_err, min_top1_agreement} (or one number in older records)
    tokens_compared: int | None
    ok: bool | None
    skipped: str  # why it was not compared (under ncu / nsys)


class RunEnv(TypedDict, total=False):
    """Where it ran (workloads.environment); missing facts are None."""

    device_name: str | None
    device_kind: str | None  # cuda | cpu
    cc: str | None
    sm_count: int | None
    driver: str | None
    cuda: str | None
    torch: str | None
    python: str | None
    platform: str | None
    num_threads: int | None


class LayerApplied(TypedDict, total=False):
    name: str
    applied: bool
    reason: str | None  # why not applied (an unmet requirement under unmet_layers=skip)


@dataclass
class RunRecord:
    """One session as stored."""

    id: str
    created_at: float
    status: RunStatus = RunStatus.PENDING
    kind: SessionKind = SessionKind.RUN
    spec: RunSpec | None = None  # None for an analysis session
    label: str = ""
    finished_at: float | None = None
    error: str | None = None
    error_type: str | None = None  # the child's exception class ("WorkbenchError": bad input)
    metrics: Metrics = field(default_factory=lambda: Metrics())
    parity: Parity = field(default_factory=lambda: Parity())
    env: RunEnv = field(default_factory=lambda: RunEnv())
    telemetry: dict[str, Any] = field(default_factory=dict)  # profilers.nvml summary
    layers_applied: list[LayerApplied] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # the workload's own report
    artifacts: dict[str, str] = field(default_factory=dict)  # role -> path in the run folder
    inputs: list[str] = field(default_factory=list)  # analysis: the artifacts analyzed
    artifact_format: str | None = None  # analysis: kineto | ncu_csv | ncu_rep | nsys_sqlite
    eval: dict[str, Any] = field(default_factory=dict)  # eval: settings and per-set results
    llm_advice: dict[str, Any] | None = None  # the stored LLM answer (never the key)
    notes: list[str] = field(default_factory=list)  # what could not be recorded, and why
    owner: dict[str, Any] = field(default_factory=dict)  # pid, start, host running it

    # ---- what lists and reports show ------------------------------------------------------
    @property
    def workload(self) -> str:
        return self.spec.workload if self.spec is not None else ""

    @property
    def profiler(self) -> str:
        """The profiler of a run, the eval marker, or an analysis session's artifact format."""
        if self.kind is SessionKind.EVAL:
            return "eval"
        if self.spec is None:
            return self.artifact_format or ""
        return self.spec.profiler

    @property
    def layers_text(self) -> str:
        if self.kind is SessionKind.EVAL:
            return ";".join(",".join(s) for s in self.eval.get("layer_sets") or [])
        return ",".join(self.spec.layers) if self.spec is not None else ""

    def headline(self) -> tuple[float | None, str]:
        """The figure a list shows: tokens/s if the run has it, else median latency."""
        tps = self.metrics.get("tokens_per_s")
        if isinstance(tps, (int, float)):
            return float(tps), "tok/s"
        lat = (self.metrics.get("latency_ms") or {}).get("median")
        if isinstance(lat, (int, float)):
            return float(lat), "ms"
        return None, ""

    # ---- the stored layout ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": RECORD_SCHEMA}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, RunSpec):
                value = value.to_dict()
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        if "extra" in data or "schema" not in data:
            data = _from_layout_1(data)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = RunStatus.parse(values.get("status", "pending"))
        values["kind"] = _kind(values.get("kind"))
        spec = values.get("spec")
        values["spec"] = RunSpec.from_stored(spec) if isinstance(spec, dict) else None
        for name in ("metrics", "parity", "env", "telemetry", "details", "artifacts", "eval",
                     "owner"):
            if not isinstance(values.get(name), dict):
                values.pop(name, None)
        return cls(**values)


# What a list of sessions can be sorted by (columns of the index).
SORT_KEYS = ("created_at", "finished_at", "status", "workload", "preset", "layers", "profiler",
             "headline", "label", "device", "id")


@dataclass(frozen=True)
class SessionRow:
    """One session as the index lists it (no run folder read)."""

    id: str
    created_at: float
    status: RunStatus
    kind: SessionKind = SessionKind.RUN
    workload: str = ""
    preset: str = ""
    layers: str = ""  # comma-separated; an eval's layer sets separated by ";"
    profiler: str = ""  # an analysis session: the artifact format; an eval: "eval"
    label: str = ""
    device: str | None = None
    headline: float | None = None  # tokens/s where the run has it, else median latency
    headline_unit: str = ""  # "tok/s" | "ms" | ""
    finished_at: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"], data["kind"] = self.status.value, self.kind.value
        return data


def _kind(value: Any) -> SessionKind:
    try:
        return SessionKind(value or "run")
    except ValueError:
        return SessionKind.RUN


def _from_layout_1(data: dict[str, Any]) -> dict[str, Any]:
    """The first record layout: the child's result beside the record's own fields in
    ``extra`` ({layers, error_type, extra: the workload's report}, plus llm_advice, notes and
    an eval's results), an analysis session's inputs in its spec, an eval's run spec nested."""
    data = dict(data)
    legacy = dict(data.pop("extra", None) or {})
    data["details"] = dict(legacy.pop("extra", None) or {})
    data["layers_applied"] = list(legacy.pop("layers", None) or [])
    data["error_type"] = legacy.pop("error_type", None)
    data["llm_advice"] = legacy.pop("llm_advice", None)
    data["notes"] = list(legacy.pop("notes", None) or [])
    kind = data.get("kind") or "run"
    spec = dict(data.get("spec") or {})
    if kind == "analysis":
        data["inputs"] = [str(p) for p in spec.get("inputs") or []]
        data["artifact_format"] = spec.get("profiler") or None
        data["spec"] = None
    elif kind == "eval":
        eval_result = dict(legacy.pop("eval", None) or {})
        settings = {k: v for k, v in spec.items()
                    if k not in ("run", "workload", "preset", "profiler", "layers")}
        data["eval"] = {**settings, **eval_result}
        data["spec"] = spec.get("run")
        data["metrics"] = {}
    data["details"].update(legacy)  # anything else a first-layout writer put there
    return data
