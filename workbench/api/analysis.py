"""Analyses, for both faces: a stored session's (parsed once, cached in its folder) and one of
artifacts from elsewhere (format detected from the content, bounded input), HTA beside ours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.records import RunRecord
from sessions.store import SessionStore, default_home
from workloads.errors import WorkbenchError

if TYPE_CHECKING:  # pandas: loaded once a parse has begun (the Kineto parse forks first)
    from analyzers.run_analysis import RunAnalysis


def analyze_session(store: SessionStore, record: RunRecord, top: int = 15) -> RunAnalysis:
    """The analysis of a session's kernel artifact (an empty one with a note without one)."""
    from workbench.api.pipeline.analysis import load_run_analysis

    return load_run_analysis(store, record, top=top)


def analyze_artifacts(paths: list[Path], top: int = 15, home: Path | None = None,
                      max_bytes: int | None = -1, max_events: int | None = -1
                      ) -> tuple[Any, RunAnalysis]:
    """Parse and analyze traces or reports another program produced. ``max_bytes`` /
    ``max_events``: the input limits (-1: the defaults, None: no limit)."""
    from profilers.parsers._io import InputLimits, limited_input
    from workbench.api.pipeline.analysis import analyze_paths

    default = InputLimits()
    limits = InputLimits(default.max_bytes if max_bytes == -1 else max_bytes,
                         default.max_events if max_events == -1 else max_events)
    with limited_input(limits):
        return analyze_paths(list(paths), top=top, home=home or default_home())


def hta_comparison(paths: list[Path], parsed: Any, analysis: RunAnalysis) -> Any:
    """Holistic Trace Analysis run on the same Kineto traces, its figures next to ours."""
    from analyzers.hta_compare import compare_with_hta
    from workbench.api.pipeline.hta_runner import run_hta

    if parsed.kind not in ("kineto", "kineto_dir"):
        raise WorkbenchError(f"--hta reads Kineto traces, not {parsed.kind}",
                             "drop --hta for ncu / nsys artifacts")
    return compare_with_hta(analysis.kernels, analysis.temporal, parsed.runtime,
                            run_hta(list(paths)))
