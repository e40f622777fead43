"""Analysis of a stored run or of artifacts from elsewhere: find the artifact, parse it (cached
in the run folder), resolve the roofline ceilings (measured by `calibrate`, cached in the
home, else the spec sheet) and run the analyzers. I/O lives here; analyses are pure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.records import RunRecord
from sessions.store import SessionStore
from workloads.atomic import write_json_atomic
from workloads.errors import CorruptCache

if TYPE_CHECKING:  # the analyzers load pandas: imported where they run, after the parse began
    from analyzers.run_analysis import RunAnalysis

# Artifact roles in the order we prefer them for the kernel table.
ARTIFACT_ROLES = ("ncu_csv", "nsys_sqlite", "trace", "ncu_rep")
CEILINGS_FILE = "ceilings.json"


def load_ceilings_cache(home: Path | None) -> dict[str, Any]:
    if home is None:
        return {}
    path = Path(home) / CEILINGS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_ceilings_cache(home: Path, cache: dict[str, Any]) -> Path:
    path = Path(home) / CEILINGS_FILE
    write_json_atomic(path, cache)
    return path


def device_name_of(parsed: Any) -> str | None:
    """The GPU an artifact was recorded on, where the artifact says."""
    props = (parsed.meta or {}).get("device_properties") or []
    if props and isinstance(props[0], dict) and props[0].get("name"):
        return str(props[0]["name"])
    metrics = parsed.metrics
    if metrics is not None and "device__attribute_display_name" in metrics.columns and len(metrics):
        name = metrics["device__attribute_display_name"].iloc[0]
        # a report reader that took the string metric as a number gives 0.0: not a name
        if isinstance(name, str) and name.strip() and not _is_number(name):
            return name.strip()
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def annotations_of(parsed: Any) -> Any:
    """The artifact's annotation ranges (name, start_ns, dur_ns[, kind]): the Kineto parser's
    annotation frame where it has one, else an nsys file's NVTX ranges; None without."""
    frame = getattr(parsed, "annotations", None)
    if frame is None:
        frame = (parsed.meta or {}).get("nvtx")
        if frame is not None and "text" in frame.columns and "name" not in frame.columns:
            frame = frame.rename(columns={"text": "name"})
    return frame


def analyze_parsed(parsed: Any, top: int = 15, home: Path | None = None,
                   device_name: str | None = None, driver: str | None = None,
                   precision: str | None = None, workload: str | None = None,
                   layers: tuple[str, ...] = (), device_kind: str | None = None,
                   inventory: Any = None) -> RunAnalysis:
    """``inventory``: the run's operation inventory (the record's ``details.inventory``), which
    costs kernels the trace cannot (CUDA graphs, compiled code). ``workload``, ``layers``,
    ``device_kind``: the run's, so the budget names only layers this run can add."""
    from analyzers.ceilings import resolve_ceilings
    from analyzers.kernel_costs import attach_kernel_costs
    from analyzers.run_analysis import analyze_tables

    device = device_name or device_name_of(parsed)
    ceilings = resolve_ceilings(device, driver, load_ceilings_cache(home)) if device else None
    kernels, cost_notes, _ = attach_kernel_costs(parsed.kernels, parsed.ops, parsed.runtime,
                                                 inventory)
    analysis = analyze_tables(parsed.kind, kernels, kernel_metrics=parsed.metrics,
                              runtime=parsed.runtime, ops=parsed.ops, top=top,
                              ceilings=ceilings, device_name=device, precision=precision,
                              annotations=annotations_of(parsed), workload=workload,
                              layers=layers, device_kind=device_kind)
    analysis.notes[:0] = (parsed.meta or {}).get("notes") or []  # what the parser left out
    analysis.notes += cost_notes
    return attach_regions(analysis, parsed)


def attach_regions(analysis: RunAnalysis, parsed: Any) -> RunAnalysis:
    """GPU time by NVTX / annotation range, and what the parser could not read (its notes)."""
    from analyzers.regions import region_analysis

    analysis.regions = region_analysis(getattr(parsed, "annotations", None), parsed.kernels,
                                       parsed.runtime)
    if analysis.regions is not None:
        analysis.notes += [n for n in analysis.regions.notes if n not in analysis.notes]
    parse_notes = (parsed.meta or {}).get("notes") or []
    analysis.notes += [n for n in parse_notes if isinstance(n, str) and n not in analysis.notes]
    return analysis


def analyze_paths(paths: list[Path], top: int = 15, home: Path | None = None) -> tuple[Any, RunAnalysis]:
    """Parse artifacts (format detected from content) and analyze them."""
    from profilers.parsers.detect import load_artifacts

    parsed = load_artifacts(list(paths))
    return parsed, analyze_parsed(parsed, top=top, home=home)


_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def run_precision(record: RunRecord) -> str | None:
    """The precision the run's GEMMs ran in: its dtype, or TF32 where an fp32 run applied the
    TF32 layer (L1) — read from what the child applied, not from the layer names asked for."""
    dtype = (record.details.get("shape") or {}).get("dtype")
    precision = _PRECISION.get(str(dtype)) if dtype else None
    applied = {str(layer.get("name")) for layer in record.layers_applied if layer.get("applied")}
    if precision == "fp32" and "L1" in applied:
        precision = "tf32"
    return precision


def load_run_analysis(store: SessionStore, record: RunRecord, top: int = 15) -> RunAnalysis:
    """The analysis of a run's profiler artifact, or an empty one (with a note) when the run
    has none (a timer run)."""
    from analyzers.run_analysis import RunAnalysis, attach_advice
    from workbench.api.pipeline.distributed_hta import attach_hta_overlap

    run_dir = store.run_dir(record.id)
    for role in ARTIFACT_ROLES:
        rel = record.artifacts.get(role)
        if rel and ((run_dir / rel).is_file() or (role == "trace" and (run_dir / rel).is_dir())):
            parsed = _parse_cached(run_dir, run_dir / rel)
            spec = record.spec
            analysis = attach_advice(analyze_parsed(
                parsed, top=top, home=store.home,
                device_name=record.env.get("device_name")
                if record.env.get("device_kind") == "cuda" else None,
                driver=record.env.get("driver"), precision=run_precision(record),
                workload=spec.workload if spec is not None and spec.workload else None,
                layers=tuple(spec.layers) if spec is not None else (),
                device_kind=record.env.get("device_kind"),
                inventory=record.details.get("inventory")), record)
            return attach_hta_overlap(analysis, run_dir / rel)
    analysis = RunAnalysis()
    analysis.notes.append(
        "no kernel-level artifact in this run (profiler "
        f"{record.profiler or '?'!r}); run with --profiler torch or ncu for kernels")
    return attach_advice(analysis, record)


def _parse_cached(run_dir: Path, artifact: Path) -> Any:
    """The artifact's parse, from the run's cache when that is valid for this very file.

    The cache is data only (``sessions.parsed_cache``: MessagePack, validated on load) — a
    session folder from someone else can hold a crafted cache, and reading it must not run
    anything. A stale, foreign or damaged cache is parsed again and rewritten, never trusted."""
    from profilers.parsers.detect import ParsedArtifact, load_artifact
    from sessions import parsed_cache  # msgspec: only where a run's cache is read

    cache = parsed_cache.cache_path(run_dir, artifact)
    parsed_cache.remove_legacy(run_dir, artifact)
    if cache.is_file():
        try:
            return parsed_cache.load(cache, artifact, ParsedArtifact)
        except CorruptCache:
            pass
    parsed = load_artifact(artifact)
    try:
        parsed_cache.save(cache, artifact, parsed)
    except (OSError, ValueError):  # a read-only or full home: analyses still work uncached
        pass
    return parsed
