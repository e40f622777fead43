"""Exports through the API, on the real H200 sessions: a session and a diff as Markdown, JSON
and CSV; the app's export writes the file `report --export` writes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import H200_RUNS
from workbench.api.analysis import analyze_session
from workbench.api.diff import diff_targets
from workbench.api.export import diff_csv, export_diff, export_session, session_csv
from workbench.api.services import Services
from workbench.api.sessions import get_session, open_store
from workbench.cli import main
from workloads.errors import WorkbenchError


def test_session_exports_in_three_formats(h200_home: Path, tmp_path: Path) -> None:
    store = open_store(h200_home)
    record = get_session(store, H200_RUNS["best"])
    analysis = analyze_session(store, record)
    md = export_session(record, analysis, tmp_path / "s.md")
    assert md.read_text().startswith("# aiperf-workbench report — dense/llama-3.1-8b")
    assert (tmp_path / "s.roofline.svg").is_file()  # the figures beside the report
    data = json.loads(export_session(record, analysis, tmp_path / "s.json").read_text())
    assert data["record"]["id"] == record.id and data["analysis"]["kernel_count"] > 1000
    rows = list(csv.DictReader(io.StringIO(session_csv(analysis))))
    assert rows and {"name", "category", "count", "total_ns", "share"} <= set(rows[0])
    assert sum(int(r["total_ns"]) for r in rows) == analysis.kernel_total_ns  # every kernel
    with pytest.raises(WorkbenchError, match="name the file .md, .json or .csv"):
        export_session(record, analysis, tmp_path / "s.txt")


def test_the_apps_export_is_the_clis_report(h200_home: Path, tmp_path: Path) -> None:
    store = open_store(h200_home)
    record = get_session(store, H200_RUNS["L0"])
    view = Services().load_analysis(store, record)
    app_file = Services().export_session(record, view, tmp_path / "app" / "r.md")
    assert main(["--home", str(h200_home), "report", record.id, "--export",
                 str(tmp_path / "cli" / "r.md")]) == 0
    assert app_file.read_text() == (tmp_path / "cli" / "r.md").read_text()


def test_diff_exports(h200_home: Path, tmp_path: Path) -> None:
    result = diff_targets(H200_RUNS["L0"], H200_RUNS["best"], h200_home)
    rows = list(csv.DictReader(io.StringIO(diff_csv(result))))
    assert len(rows) > 20 and {"name", "baseline_ns", "candidate_ns", "delta_ns"} <= set(rows[0])
    assert "verdict: improved" in export_diff(result, tmp_path / "d.md").read_text()
    assert json.loads(export_diff(result, tmp_path / "d.json").read_text())["diff"]["verdict"] \
        == "improved"
