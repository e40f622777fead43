"""The app against the real core: a real tiny CPU run through profilers.runner.run (the child
process, torch profiler), the real analysis and diff; and analysis sessions saved by
`aiperf-workbench analyze --save` from the H100 fixtures (kernels and roofline points)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from sessions.store import SessionStore
from tests.functional.conftest import screen_text, wait_until
from workbench import cli
from workbench.tui.app import make_app
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.settings import Settings
from workbench.tui.widgets.kernel_table import KernelTableView
from workbench.tui.widgets.kernels_panel import KernelsPanel
from workbench.tui.widgets.roofline import RooflinePlot

pytestmark = pytest.mark.anyio

def text_of(widget: Static) -> str:
    return str(widget.content)


def results_ready(app, not_id: str | None = None) -> bool:  # type: ignore[no-untyped-def]
    screen = app.screen
    return (isinstance(screen, ResultsScreen) and screen.analysis is not None
            and screen.record.id != not_id)


@pytest.mark.slow
@pytest.mark.torch  # real CPU runs: a workload child
async def test_real_cpu_runs_kernels_and_diff(tmp_path: Path) -> None:
    """dense/tiny under the torch profiler, twice (L0+L1, then L0), on the CPU, for real."""
    app = make_app(Settings(default_profiler="torch"), tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.probe is not None)
        setup = app.screen
        assert setup.query_one("#preset", Select).value == "tiny"
        assert setup.query_one("#profiler", Select).value == "torch"
        setup.query_one("#param-repeat", Input).value = "2"
        setup.query_one("#layer-L1", Checkbox).focus()
        await pilot.press("space")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: results_ready(app), timeout=90)
        first = app.screen.record
        assert first.status == "ok", first.error
        assert first.spec.layers == ["L0", "L1"] and first.spec.profiler == "torch"

        summary = screen_text(app)  # the Summary tab: real metrics, not placeholders
        latency = first.metrics["latency_ms"]
        assert f"{latency['median']:,.3f} ms" in summary
        assert f"n={latency['n']}" in summary and latency["n"] == 2
        assert "parity" in summary.lower() and "ok" in summary

        await pilot.press("2")  # Kernels: a CPU trace has no GPU kernels -> the CPU ops
        panel = app.screen.query_one(KernelsPanel)
        assert app.screen.query_one(KernelTableView).display is False
        ops = panel.query_one("#cpu-ops", DataTable)
        assert ops.display and ops.row_count > 0
        shown = screen_text(app)
        assert "aten::mm" in shown or "aten::linear" in shown
        assert "No GPU kernels" in text_of(panel.query_one("#kernel-status", Static))

        await pilot.press("f2")  # another layer set: L1 off
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen))
        app.screen.query_one("#layer-L1", Checkbox).focus()
        await pilot.press("space")
        assert not app.screen.query_one("#layer-L1", Checkbox).value
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: results_ready(app, first.id), timeout=90)
        second = app.screen.record
        assert second.status == "ok" and second.spec.layers == ["L0"]

        await pilot.press("4")  # Diff: the earlier run is the default baseline
        verdict = app.screen.query_one("#diff-verdict", Static)
        await wait_until(pilot, lambda: "Verdict" in text_of(verdict), timeout=30)
        shown = text_of(verdict)
        assert first.id in shown and second.id in shown
        assert "speedup" in shown and "n/a×" not in shown
    runs = SessionStore(tmp_path).list()
    assert {r.id for r in runs} == {first.id, second.id}


def _save_analysis(home: Path, artifact: Path) -> str:
    """`aiperf-workbench analyze ARTIFACT --save`, in process; returns the new session id."""
    before = {r.id for r in SessionStore(home).list()}
    assert cli.main(["--home", str(home), "analyze", str(artifact), "--save"]) == 0
    (new_id,) = {r.id for r in SessionStore(home).list()} - before
    return new_id


async def _open_session(app, pilot, run_id: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("f3")
    await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.rows)
    ids = [r.id for r in app.screen.visible_rows()]
    app.screen.query_one("#sessions-table", DataTable).move_cursor(row=ids.index(run_id))
    await pilot.press("enter")
    await wait_until(pilot, lambda: results_ready(app) and app.screen.record.id == run_id)


@pytest.fixture(scope="module")
def fixture_sessions(tmp_path_factory, h100_fixtures: Path) -> tuple[Path, str, str]:
    """A store holding the two analysis sessions `analyze --save` makes from the fixtures."""
    home = tmp_path_factory.mktemp("fixture-sessions")
    return (home, _save_analysis(home, h100_fixtures / "torch_trace.json"),
            _save_analysis(home, h100_fixtures / "ncu_raw.csv"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_h100_fixture_sessions(fixture_sessions, size) -> None:
    home, trace_id, ncu_id = fixture_sessions
    app = make_app(Settings(), home)
    async with app.run_test(size=size) as pilot:
        await _open_session(app, pilot, trace_id)
        analysis = app.screen.analysis
        assert analysis.error is None and analysis.kernels is not None
        await pilot.press("2")
        table = app.screen.query_one(KernelTableView)
        assert table.display and table.shown == len(analysis.kernels) > 0
        top = analysis.kernels.sort_values("dur_ns", ascending=False).iloc[0]
        assert str(top["name"])[:20] in table.render_line(1).text
        assert "of" in text_of(app.screen.query_one("#kernel-status", Static))

        await pilot.press("3")  # no with_flops, but the ops' recorded shapes give FLOPs/bytes
        plot = app.screen.query_one(RooflinePlot)
        assert {r.name for r in analysis.roofs} >= {"bf16", "fp32", "DRAM"}
        points = analysis.roofline
        drawable = points[(points["flops_per_s"] > 0) & (points["intensity"] > 0)]
        assert plot.point_count == len(drawable) > 0
        details = text_of(app.screen.query_one("#roofline-details", Static))
        assert "No kernel points" not in details
        if size[1] >= 40:  # at 80x24 the budget below leaves the plot rows for one label
            assert "bf16/fp16 989.4TFLOP/s" in screen_text(app)  # equal roofs share a label

        await pilot.press("escape")
        await _open_session(app, pilot, ncu_id)
        assert app.screen.analysis.roofline is not None
        await pilot.press("3")  # ncu counters: one point per kernel, the heaviest selected
        plot = app.screen.query_one(RooflinePlot)
        points = app.screen.analysis.roofline
        drawable = points[(points["flops_per_s"] > 0) & (points["intensity"] > 0)]
        assert plot.point_count == len(drawable) > 0
        heaviest = points.sort_values("dur_ns", ascending=False).iloc[0]
        details = text_of(app.screen.query_one("#roofline-details", Static))
        assert details.startswith(f"[1/{plot.point_count}] {heaviest['name'][:30]}")
        assert "TFLOP/s" in details and "from ncu" in details and "% of roof" in details
        assert screen_text(app).count("◆") == 2  # the selected point is drawn (+ legend)
        await pilot.press("right")
        assert f"[2/{plot.point_count}]" in text_of(app.screen.query_one("#roofline-details",
                                                                            Static))
