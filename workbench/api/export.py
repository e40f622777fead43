"""Exports, for both faces: a session's or a diff's report as Markdown (with its SVG figures
beside a file), JSON (the README's schema) or CSV (one row per kernel), written atomically —
never over a symlink, a FIFO or a device; a full or read-only disk is one line."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from analyzers.run_analysis import RunAnalysis
from sessions.index_db import describe_os_error
from sessions.records import RunRecord
from workbench.api.diff import DiffResult
from workloads.errors import WorkbenchError

FORMATS = ("md", "json", "csv")


def write_text(path: Path, text: str) -> Path:
    """``text`` into ``path`` atomically (folders created); returns the path."""
    from workloads.atomic import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)  # never over a symlink, a FIFO or a device: one line
    except OSError as exc:
        raise describe_os_error(exc, f"cannot write {path}") from None
    return path


def format_of(path: Path) -> str:
    """The export format a file name asks for (.md / .markdown, .json, .csv)."""
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"markdown": "md"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise WorkbenchError(f"cannot tell the export format of {path.name}",
                             "name the file .md, .json or .csv")
    return fmt


def figures_beside(report: Path | None, analysis: Any) -> dict[str, str]:
    """The roofline and budget SVGs beside a report written to a file (none for stdout);
    figure name -> link relative to the report."""
    if report is None or analysis is None:
        return {}
    from workbench.export.svg_figures import write_figures

    try:
        return write_figures(report, analysis)
    except OSError as exc:  # a full disk, a read-only folder: one line that says which
        raise describe_os_error(exc, f"cannot write the figures beside {report}") from None


# ---- a session ------------------------------------------------------------------------------
def session_markdown(record: RunRecord, analysis: RunAnalysis | None,
                     report: Path | None = None) -> str:
    """The session's report; with ``report`` (where it will be written) its figures too."""
    from workbench.export.markdown import render_run_report

    return render_run_report(record, analysis, figures_beside(report, analysis) or None)


def session_json(record: RunRecord, analysis: RunAnalysis) -> str:
    from workbench.export.json_export import analysis_to_dict, dumps

    return dumps({"record": record.to_dict(), "analysis": analysis_to_dict(analysis)})


def session_csv(analysis: RunAnalysis) -> str:
    """One row per kernel name: category, launches, time (ns), share of GPU time."""
    from analyzers.breakdown import kernel_breakdown

    kernels = analysis.kernels
    if kernels is None or not len(kernels):
        return _csv(["name", "category", "count", "total_ns", "mean_ns", "p50_ns", "p99_ns",
                     "share"], [])
    return _frame_csv(kernel_breakdown(kernels))


def export_session(record: RunRecord, analysis: RunAnalysis, path: Path) -> Path:
    """Write the session's report in the format ``path`` names (.md, .json, .csv)."""
    fmt = format_of(path)
    if fmt == "md":
        return write_text(path, session_markdown(record, analysis, path))
    return write_text(path, session_json(record, analysis) if fmt == "json"
                      else session_csv(analysis))


# ---- artifacts from elsewhere --------------------------------------------------------------
def artifacts_markdown(paths: list[str], analysis: RunAnalysis, report: Path | None = None,
                       hta: Any = None) -> str:
    from workbench.export.markdown import render_artifact_report

    text = render_artifact_report(paths, analysis, figures_beside(report, analysis) or None)
    if hta is not None:
        from workbench.export.hta_md import render_hta_section

        text += "\n" + render_hta_section(hta)
    return text


def artifacts_json(analysis: RunAnalysis, hta: Any = None) -> str:
    from workbench.export.json_export import analysis_to_dict, dumps

    return dumps({**analysis_to_dict(analysis), **({"hta": hta} if hta is not None else {})})


# ---- a diff ---------------------------------------------------------------------------------
def diff_markdown(result: DiffResult, top: int = 15) -> str:
    from workbench.export.diff_md import render_diff_markdown

    return render_diff_markdown(result.diff, result.baseline, result.candidate, top=top,
                                notes=result.notes)


def diff_json(result: DiffResult) -> str:
    from workbench.export.json_export import dumps

    return dumps({"baseline": result.baseline, "candidate": result.candidate,
                  "diff": result.diff})


def diff_csv(result: DiffResult) -> str:
    """One row per kernel: its time per profiled step in each run and the change."""
    kernels = result.diff.kernels
    if kernels is None or not len(kernels):
        return _csv(["name", "category", "baseline_ns", "candidate_ns", "delta_ns", "status"],
                    [])
    return _frame_csv(kernels)


def export_diff(result: DiffResult, path: Path, top: int = 15) -> Path:
    fmt = format_of(path)
    text = {"md": lambda: diff_markdown(result, top), "json": lambda: diff_json(result),
            "csv": lambda: diff_csv(result)}[fmt]()
    return write_text(path, text)


# ---- CSV ------------------------------------------------------------------------------------
def _frame_csv(frame: Any) -> str:
    columns = [str(c) for c in frame.columns]
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    return _csv(columns, rows)


def _csv(header: list[str], rows: Any) -> str:
    """Missing values are empty cells; a cell that a spreadsheet would run as a formula
    (=, +, -, @ first) is kept as text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
