"""Sweeps and scaling, for both faces: one session per point.

sweep   any preset parameter (``batch=[1, 2, 4, 8]``), the precision (the dtype param) or the
        layer set; several axes make a grid (their product). Throughput and latency against
        the first axis, one plot per combination of the others, the knee of throughput marked.
scale   the same over GPU count: each point runs under torchrun with ``nproc_per_node`` = the
        count; speedup and efficiency per GPU against the first.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from workbench.api.runs import EventSink, build_spec, check_spec, run
from workloads.catalog import get_preset, parse_layers
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16",
              "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclass
class PointSettings:
    """What every point shares."""

    workload: str = "dense"
    preset: str = "tiny"
    layers: str = "L0"
    device: str = "auto"
    repeat: int = 5
    warmup: int = 2
    timeout_s: float = 900.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepResult:
    title: str
    axes: list[str]
    rows: list[dict[str, Any]]  # point, status, latency_ms, tokens_per_s, run_id, speedup, knee
    series: list[dict[str, Any]]  # one plot per combination of the other axes
    meta: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(r["status"] == RunStatus.OK for r in self.rows)

    def markdown(self) -> str:
        from workbench.export.sweep_md import render_sweep

        return render_sweep(self.title, self.axes, self.rows, self.series, self.meta)


@dataclass
class ScaleResult:
    title: str
    rows: list[dict[str, Any]]  # gpus, status, latency_ms, tokens_per_s, speedup, efficiency
    meta: dict[str, Any]
    knee: int | None

    @property
    def ok(self) -> bool:
        return all(r["status"] == RunStatus.OK for r in self.rows)

    def markdown(self) -> str:
        from workbench.export.sweep_md import render_scale

        return render_scale(self.title, self.rows, self.meta, self.knee)


def build_axes(params: list[tuple[str, list[Any]]], precision: str | None = None,
               layers_sets: str | None = None) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for key, values in params:
        if key in axes:
            raise WorkbenchError(f"--param {key} given twice", "list all values in one")
        axes[key] = values
    if precision:
        if "dtype" in axes:
            raise WorkbenchError("--precision and --param dtype=... both given")
        try:
            axes["dtype"] = [PRECISIONS[p.strip()] for p in precision.split(",") if p.strip()]
        except KeyError as exc:
            raise WorkbenchError(f"unknown precision {exc.args[0]!r}",
                                 "choose from fp32, bf16, fp16") from None
    if layers_sets:
        axes["layers"] = [parse_layers(part) for part in layers_sets.split(";") if part.strip()]
    if not axes:
        raise WorkbenchError("nothing to sweep",
                             "give --param KEY=V1,V2,..., --precision or --layers-sets")
    return axes


def grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def _point_spec(settings: PointSettings, params: dict[str, Any], layers: list[str],
                nproc: int, label: str) -> RunSpec:
    return build_spec(workload=settings.workload, preset=settings.preset, layers=layers,
                      profiler="timer", params=params, repeat=settings.repeat,
                      warmup=settings.warmup, timeout_s=settings.timeout_s,
                      device=settings.device, label=label, telemetry=False,
                      nproc_per_node=nproc)


def _run_all(specs: list[RunSpec], store: SessionStore, on_event: EventSink | None,
             cancel: threading.Event | None) -> list[RunRecord]:
    """Every point is checked before the first runs: a bad value found after an hour of
    sweeping is an hour lost."""
    checked = [check_spec(spec) for spec in specs]
    records = []
    for spec in checked:
        records.append(run(spec, store, on_event=on_event, cancel=cancel))
        if cancel is not None and cancel.is_set():
            break
    return records


def _figures(record: RunRecord) -> tuple[float | None, float | None]:
    m = record.metrics
    return (m.get("latency_ms") or {}).get("median"), m.get("tokens_per_s")


def run_sweep(settings: PointSettings, axes: dict[str, list[Any]], store: SessionStore,
              nproc_per_node: int = 1, on_event: EventSink | None = None,
              cancel: threading.Event | None = None) -> SweepResult:
    from analyzers.scaling import knee_index, speedups
    from workbench.export.sweep_md import point_label

    get_preset(settings.workload, settings.preset)
    points = grid(axes)
    base_layers = parse_layers(settings.layers)
    specs = [_point_spec(settings, {**settings.params, **{k: v for k, v in point.items()
                                                           if k != "layers"}},
                         point.get("layers", base_layers), nproc_per_node,
                         f"sweep {point_label(point)}") for point in points]
    rows: list[dict[str, Any]] = []
    for point, record in zip(points, _run_all(specs, store, on_event, cancel), strict=False):
        latency, throughput = _figures(record)
        rows.append({"point": point, "status": record.status, "latency_ms": latency,
                     "tokens_per_s": throughput, "run_id": record.id, "speedup": None})
    first_axis, others = next(iter(axes)), list(axes)[1:]
    series = []
    for combo in itertools.product(*(range(len(axes[o])) for o in others)):
        fixed = {o: axes[o][i] for o, i in zip(others, combo, strict=True)}
        members = [r for r in rows if all(r["point"][o] == v for o, v in fixed.items())]
        series_throughput: list[float | None] = [r["tokens_per_s"] for r in members]
        knee = knee_index(series_throughput)
        for r, s in zip(members, speedups(series_throughput), strict=True):
            r["speedup"] = s
        if knee is not None:
            members[knee]["knee"] = True
        series.append({"title": f"{first_axis} sweep" + (f" ({point_label(fixed)})" if fixed
                                                          else ""),
                       "labels": [point_label({first_axis: r["point"][first_axis]}).split(
                           "=", 1)[1] for r in members],
                       "throughput": series_throughput,
                       "latency": [r["latency_ms"] for r in members],
                       "knee": knee})
    meta = {"workload": settings.workload, "preset": settings.preset,
            "layers": settings.layers if "layers" not in axes else None,
            "device": settings.device, "repeat": settings.repeat, "points": len(points)}
    title = f"Sweep — {settings.workload} / {settings.preset} over {', '.join(axes)}"
    return SweepResult(title, list(axes), rows, series, meta)


def parse_gpu_counts(text: str) -> list[int]:
    try:
        gpus = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise WorkbenchError(f"--gpus must be integers, got {text!r}", "e.g. 1,2,4") from None
    if not gpus or min(gpus) < 1:
        raise WorkbenchError("--gpus needs counts >= 1", "e.g. 1,2,4")
    return gpus


def run_scale(settings: PointSettings, gpus: list[int], store: SessionStore,
              on_event: EventSink | None = None,
              cancel: threading.Event | None = None) -> ScaleResult:
    from analyzers.scaling import knee_index, scaling_efficiency, speedups

    get_preset(settings.workload, settings.preset)
    layers = parse_layers(settings.layers)
    specs = [_point_spec(settings, dict(settings.params), layers, count, f"scale x{count}")
             for count in gpus]
    rows: list[dict[str, Any]] = []
    for count, record in zip(gpus, _run_all(specs, store, on_event, cancel), strict=False):
        latency, throughput = _figures(record)
        rows.append({"gpus": count, "status": record.status, "latency_ms": latency,
                     "tokens_per_s": throughput, "run_id": record.id})
    throughput_per_count: list[float | None] = [r["tokens_per_s"] for r in rows]
    counts = [r["gpus"] for r in rows]
    for r, s, e in zip(rows, speedups(throughput_per_count),
                       scaling_efficiency(counts, throughput_per_count), strict=True):
        r["speedup"], r["efficiency"] = s, e
    meta = {"workload": settings.workload, "preset": settings.preset, "layers": settings.layers,
            "device": settings.device, "repeat": settings.repeat}
    return ScaleResult(f"Scaling — {settings.workload} / {settings.preset} over GPUs", rows,
                       meta, knee_index(throughput_per_count))
