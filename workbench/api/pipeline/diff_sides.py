"""The two sides of a diff, loaded once for both front ends: the CLI's `diff` and the app's
Compare call ``diff_sides`` with sides built here, so the same two sessions give the same
numbers (per profiled step, same comparability) wherever they are compared.

A side is a stored session (its record, its kernel table, how many steps its kernel artifact
covers) or an artifact path (no record: compared by GPU kernel time, no repeats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzers.diff import RunDiff, diff_runs
from analyzers.profiled_steps import profiled_steps
from sessions.records import RunRecord, SessionKind
from sessions.store import SessionStore


@dataclass
class DiffSide:
    label: str
    record: dict[str, Any]
    kernels: Any = None  # KernelTable or None
    steps: float | None = None  # profiled steps the kernel artifact covers, where known
    notes: list[str] = field(default_factory=list)


def side_from_record(store: SessionStore, record: RunRecord) -> DiffSide:
    from workbench.api.pipeline.analysis import load_run_analysis

    analysis = load_run_analysis(store, record)
    kernels = analysis.kernels if analysis.kernels is not None and len(analysis.kernels) else None
    data = record.to_dict()
    notes = []
    if kernels is None:
        notes.append(f"{record.id}: no GPU kernels in the run's artifacts (profiler "
                     f"{record.profiler or '?'!r}): latency only")
    if record.kind is SessionKind.ANALYSIS:
        notes.append(f"{record.id}: an analysis session (artifacts from elsewhere): no run "
                     "spec and no repeats; compared by its total GPU time")
    return DiffSide(record.id, data, kernels, profiled_steps(data), notes)


def side_from_path(path: Path, home: Path | None) -> DiffSide:
    from workbench.api.pipeline.analysis import analyze_paths, device_name_of

    parsed, analysis = analyze_paths([path], home=home)
    kernels = analysis.kernels
    record: dict[str, Any] = {"id": None, "kind": "artifact", "label": path.name, "status": "ok",
                              "env": {"device_name": device_name_of(parsed)}, "spec": {},
                              "metrics": {}}
    return DiffSide(str(path), record, kernels if kernels is not None and len(kernels) else None,
                    None, [f"{path.name}: an artifact, compared by its total GPU time (no "
                           "repeats, so no confidence interval and no noise floor)"])


def load_side(arg: str, home: Path | None) -> DiffSide:
    """An existing file or folder is an artifact; anything else a session id (or prefix)."""
    path = Path(arg)
    try:
        is_artifact = path.exists()
    except OSError:  # e.g. a 300-character "id": not a path, so a session id (one line there)
        is_artifact = False
    if is_artifact:
        return side_from_path(path, home)
    store = SessionStore(home)
    return side_from_record(store, store.get(arg))


def diff_sides(a: DiffSide, b: DiffSide, force: bool = False, n_boot: int = 4000) -> RunDiff:
    """The one diff both front ends compute: per profiled step, with comparability."""
    both = a.kernels is not None and b.kernels is not None
    return diff_runs(a.record, b.record,
                     kt_baseline=a.kernels if both else None,
                     kt_candidate=b.kernels if both else None,
                     steps_baseline=a.steps, steps_candidate=b.steps, force=force, n_boot=n_boot)
