"""The same diff through the CLI and through the app (Pilot), on the real H200 sessions: one
core function, the same sides, identical numbers (issue 18: the app's Compare did not
normalise kernel times per profiled step, so the two faces disagreed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tests.conftest import H200_RUNS
from tests.functional.conftest import wait_until
from workbench import cli
from workbench.tui.app import make_app
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.settings import Settings
from workbench.tui.widgets.diff_panel import DiffPanel

pytestmark = pytest.mark.anyio


def _cli_diff(home: Path, baseline: str, candidate: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{baseline}-{candidate}.json"
    assert cli.main(["--home", str(home), "diff", baseline, candidate, "--json", str(out)]) == 0
    return json.loads(out.read_text())["diff"]


async def _app_diff(home: Path, candidate: str):  # type: ignore[no-untyped-def]
    app = make_app(Settings(), home)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.rows)
        ids = [r.id for r in app.screen.visible_rows()]
        app.screen.query_one("#sessions-table", DataTable).move_cursor(row=ids.index(candidate))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                         and app.screen.record.id == candidate, timeout=60)
        await pilot.press("4")  # Diff: the newest earlier run of the same preset
        panel = app.screen.query_one(DiffPanel)
        await wait_until(pilot, lambda: panel.diff is not None, timeout=120)
        shown = str(app.screen.query_one("#diff-verdict", Static).content)
        return app.screen.baseline_id, panel.diff, shown


async def test_cli_and_app_give_the_same_diff(h200_home: Path, tmp_path: Path) -> None:
    baseline_id, view, shown = await _app_diff(h200_home, H200_RUNS["best"])
    assert baseline_id == H200_RUNS["L0"]  # the eager run was captured just before
    data = _cli_diff(h200_home, baseline_id, H200_RUNS["best"], tmp_path)

    assert view.verdict == data["verdict"] == "improved"
    assert view.speedup == pytest.approx(data["speedup"], rel=1e-12)
    assert (view.ci_low, view.ci_high) == pytest.approx((data["ci_low"], data["ci_high"]),
                                                        rel=1e-12)
    assert view.noise_floor_pct == pytest.approx(data["noise_floor_pct"])
    assert view.per_step and data["per_step"]  # both normalise per profiled step
    app_kernels = {r["name"]: r for r in view.kernel_deltas.to_dict(orient="records")}
    cli_kernels = {r["name"]: r for r in data["kernels"]}
    assert app_kernels.keys() == cli_kernels.keys() and len(cli_kernels) > 20
    for name, row in cli_kernels.items():
        for col in ("baseline_ns", "candidate_ns", "delta_ns", "baseline_count",
                    "candidate_count"):
            assert app_kernels[name][col] == pytest.approx(row[col], rel=1e-12), (name, col)
    # gemv_m1_kernel: 129 launches per decode step in the best stack (3 profiled steps)
    assert cli_kernels["gemv_m1_kernel"]["candidate_count"] == pytest.approx(129)
    assert "comparable (workload, preset, shape, dtype, step, device equal)" in shown
    assert "noise floor" in shown and "latency CV" in shown and "95% CI" in shown
