"""The diff, for both faces: two sessions (ids or unique prefixes) or two artifacts, the same
sides and the same core function (``pipeline.diff_sides.diff_sides``: per profiled step, with
comparability), so `aiperf-workbench diff A B` and the app's Compare show the same numbers;
and the CI gate over it, failing closed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyzers.diff import GateDecision, RunDiff, gate
from sessions.records import RunRecord
from sessions.store import SessionStore, default_home
from workbench.api.pipeline.diff_sides import DiffSide, diff_sides, load_side, side_from_record
from workloads.errors import WorkbenchError


@dataclass
class DiffResult:
    baseline: str  # what each side is: a session id or an artifact path
    candidate: str
    diff: RunDiff
    notes: list[str] = field(default_factory=list)  # what each side could not offer


def _result(a: DiffSide, b: DiffSide, force: bool) -> DiffResult:
    return DiffResult(a.label, b.label, diff_sides(a, b, force=force), a.notes + b.notes)


def diff_targets(baseline: str, candidate: str, home: Path | str | None = None,
                 force: bool = False) -> DiffResult:
    """Each of ``baseline`` / ``candidate``: an existing file or folder is an artifact,
    anything else a session id (or unique prefix) in ``home``."""
    home = Path(home) if home is not None else default_home()
    return _result(load_side(baseline, home), load_side(candidate, home), force)


def diff_sessions(store: SessionStore, baseline: RunRecord, candidate: RunRecord,
                  force: bool = False) -> DiffResult:
    return _result(side_from_record(store, baseline), side_from_record(store, candidate), force)


def check_gate(result: DiffResult, threshold_pct: float) -> GateDecision:
    """Exit 1 when B is slower than A beyond the noise by more than ``threshold_pct``; 2 when
    not comparable; 3 when it cannot decide (no repeats, noise wider than the threshold)."""
    if threshold_pct < 0:
        raise WorkbenchError("--fail-on-regression must be >= 0", "e.g. --fail-on-regression 5")
    return gate(result.diff, threshold_pct)
