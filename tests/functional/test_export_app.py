"""Export from the app (key e, palette "Export report") writes the very files the CLI writes:
`report ID --export` / `--json` for the open session, `diff A B --export` / `--json` on the
Diff tab — one API (workbench.api.export), compared byte for byte on the real H200 sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from tests.conftest import H200_RUNS
from tests.functional.conftest import wait_until
from workbench import cli
from workbench.tui.app import make_app
from workbench.tui.screens.export import ExportScreen
from workbench.tui.screens.messages import OpenRun
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.settings import Settings
from workbench.tui.widgets.diff_panel import DiffPanel

pytestmark = pytest.mark.anyio


async def _export_from_app(home: Path, run_id: str, target: Path, tab: str = "summary") -> str:
    """Open ``run_id`` (on ``tab``), press e, type ``target``, Enter; the notification."""
    app = make_app(Settings(), home)
    async with app.run_test(size=(100, 30)) as pilot:
        app.post_message(OpenRun(run_id, tab=tab))
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                         and app.screen.analysis is not None, timeout=120)
        results = app.screen
        if tab == "diff":
            panel = results.query_one(DiffPanel)
            await wait_until(pilot, lambda: panel.diff is not None, timeout=120)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen))
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, lambda: target.with_suffix(".json").is_file(), timeout=120)
        await wait_until(pilot, lambda: any(n.title == "Exported" for n in app._notifications))
        return next(n.message for n in app._notifications if n.title == "Exported")


async def test_app_export_writes_the_files_report_export_writes(h200_home: Path,
                                                                  tmp_path: Path) -> None:
    run_id = H200_RUNS["best"]
    app_md = tmp_path / "app" / "report.md"
    shown = await _export_from_app(h200_home, run_id, app_md)
    assert str(app_md) in shown and str(app_md.with_suffix(".json")) in shown  # the paths
    cli_md = tmp_path / "cli" / "report.md"
    assert cli.main(["--home", str(h200_home), "report", run_id, "--export", str(cli_md),
                     "--json", str(cli_md.with_suffix(".json"))]) == 0
    assert app_md.read_bytes() == cli_md.read_bytes()
    assert app_md.with_suffix(".json").read_bytes() == cli_md.with_suffix(".json").read_bytes()
    figures = sorted(p.name for p in cli_md.parent.iterdir() if p.suffix == ".svg")
    assert figures and figures == sorted(p.name for p in app_md.parent.iterdir()
                                         if p.suffix == ".svg")
    assert "![" in app_md.read_text()  # the figures are linked, as in the CLI's report


async def test_app_export_on_the_diff_tab_writes_the_diff(h200_home: Path,
                                                          tmp_path: Path) -> None:
    baseline, candidate = H200_RUNS["L0"], H200_RUNS["best"]
    app_md = tmp_path / "app" / "diff.md"
    await _export_from_app(h200_home, candidate, app_md, tab="diff")
    cli_md = tmp_path / "cli" / "diff.md"
    assert cli.main(["--home", str(h200_home), "diff", baseline, candidate, "--export",
                     str(cli_md), "--json", str(cli_md.with_suffix(".json"))]) == 0
    assert app_md.read_bytes() == cli_md.read_bytes()
    assert app_md.with_suffix(".json").read_bytes() == cli_md.with_suffix(".json").read_bytes()
