"""Pilot tests of the app's flows, driven by keys only (no mouse), against FakeCore."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from sessions.store import SessionStore
from tests.functional.conftest import BASELINE_ID, CANDIDATE_ID, screen_text, wait_until
from tests.functional.fakes import INJECTED_NAME, FakeCore
from workbench.tui.app import help_sections
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.live import LiveRunScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.widgets.diff_panel import DiffPanel
from workbench.tui.widgets.kernel_table import KernelTableView

pytestmark = pytest.mark.anyio


def static_text(widget: Static) -> str:
    return str(widget.content)


def results_ready(app) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(app.screen, ResultsScreen) and app.screen.analysis is not None


async def test_run_kernels_rerun_and_diff(tmp_path, app_factory) -> None:
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.probe is not None)
        setup = app.screen
        assert setup.workload == "dense"
        assert setup.query_one("#preset", Select).value == "tiny"
        assert "NVIDIA H100" in static_text(setup.query_one("#device-line", Static))
        assert "GPU memory" in static_text(setup.query_one("#estimate", Static))

        setup.query_one("#layer-L1", Checkbox).focus()
        await pilot.press("space")  # toggle L1 on
        assert setup.query_one("#layer-L1", Checkbox).value
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: results_ready(app))
        assert core.specs[-1].layers == ["L0", "L1"]
        first = app.screen.record

        await pilot.press("2")  # Kernels tab
        table = app.screen.query_one(KernelTableView)
        assert table.shown == 100_000
        # (how fast filtering and drawing 100k rows is: benchmarks/tui_startup.py, not a test)
        table.filter_text = "flash"
        lines = [table.render_line(y) for y in range(table.size.height)]
        assert 0 < table.shown < 100_000
        assert "flash_fwd" in lines[1].text
        await pilot.press("s")  # sort by name
        await pilot.press("end")
        assert table.cursor == table.shown - 1

        await pilot.press("f2")  # back to setup, L1 off: another layer set
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen))
        app.screen.query_one("#layer-L1", Checkbox).focus()
        await pilot.press("space")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: results_ready(app) and app.screen.record.id != first.id)
        assert core.specs[-1].layers == ["L0"]

        await pilot.press("4")  # Diff: defaults to the earlier run of the same workload/preset
        verdict = app.screen.query_one("#diff-verdict", Static)
        await wait_until(pilot, lambda: "Verdict" in static_text(verdict))
        assert first.id in static_text(verdict)
        assert app.screen.query_one("#diff-kernels", DataTable).row_count > 0


async def test_cancel_really_stops_the_run(tmp_path, app_factory) -> None:
    core = FakeCore(block=True)
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        await wait_until(pilot, lambda: core.started.is_set())
        assert not live.cancel_event.is_set()
        await pilot.press("c")
        assert live.cancel_event.is_set()
        await wait_until(pilot, lambda: core.cancel_seen.is_set() and live.finished)
        assert live.record is not None and live.record.status == "cancelled"
        assert "cancelled" in static_text(live.query_one("#live-status", Static))
        await pilot.press("escape")  # finished: Esc goes back
        assert isinstance(app.screen, RunSetupScreen)
    assert SessionStore(tmp_path).list(status="cancelled")


async def test_kernel_names_and_labels_render_literally(seeded_home, app_factory) -> None:
    app = app_factory(seeded_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and app.screen.rows)
        await pilot.press("enter")
        await wait_until(pilot, lambda: results_ready(app))
        assert "[italic]not markup[/]" in screen_text(app)
        await pilot.press("2", "slash")
        await pilot.press(*"[bold")
        table = app.screen.query_one(KernelTableView)
        assert table.filter_text == "[bold"
        assert table.shown > 0
        assert INJECTED_NAME in table.render_line(1).text
        table.focus()
        await pilot.pause()
        shown = screen_text(app)
        assert shown.count(INJECTED_NAME) >= 2  # in the table row and in the details


async def test_sessions_mark_compare_and_delete(seeded_home, app_factory) -> None:
    app = app_factory(seeded_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and len(app.screen.rows) == 2)
        sessions = app.screen
        await pilot.press("space", "down", "space")
        assert set(sessions.marked) == {BASELINE_ID, CANDIDATE_ID}
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert app.screen.record.id == CANDIDATE_ID and app.screen.baseline_id == BASELINE_ID
        verdict = app.screen.query_one(DiffPanel).query_one("#diff-verdict", Static)
        await wait_until(pilot, lambda: "Verdict" in static_text(verdict))

        await pilot.press("escape")
        assert app.screen is sessions
        await pilot.press("slash", *"bbbb", "enter")
        assert [r.id for r in sessions.visible_rows()] == [CANDIDATE_ID]
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # the safe answer first: nothing deleted
        assert len(SessionStore(seeded_home).list()) == 2
        await pilot.press("d", "y")
        await wait_until(pilot, lambda: len(sessions.rows) == 1)
        assert [r.id for r in SessionStore(seeded_home).list()] == [BASELINE_ID]


async def test_help_lists_every_binding_and_palette_has_them(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for _ in range(4):  # the table is taller than the screen: page through it
            await pilot.press("pagedown")
            await pilot.pause()
            text += screen_text(app)
        ids = [b.id for _, bindings in help_sections() for b in bindings if b.id]
        assert len(ids) > 20
        for binding_id in ids:
            assert binding_id in text, binding_id
        await pilot.press("escape")
        assert isinstance(app.screen, RunSetupScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"New run", "Sessions", "Help", "Run"} <= set(titles)
        await pilot.press("ctrl+p", *"Sessions")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen))


async def test_setup_rejects_bad_parameters(tmp_path, app_factory) -> None:
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        batch = app.screen.query_one("#param-batch", Input)
        batch.value = "0"
        check = app.screen.query_one("#run-check", Static)
        await wait_until(pilot, lambda: "batch must be > 0" in static_text(check))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, RunSetupScreen) and not core.specs


async def test_no_color(tmp_path, app_factory, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3", "f1", "escape", "f2")
        assert app.no_color and isinstance(app.screen, RunSetupScreen)


@pytest.mark.usefixtures("pinned_catalog")
async def test_setup_follows_the_workload(tmp_path, app_factory) -> None:
    """Layers that do not apply to the chosen workload, and parameters its preset lacks, are
    disabled with the reason shown; the spec leaves them out."""
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.probe is not None)
        setup = app.screen
        assert not setup.query_one("#layer-L2", Checkbox).disabled
        setup.query_one("#layer-L2", Checkbox).value = True
        setup.query_one("#workloads").focus()
        await pilot.press("down")  # the GEMM micro-benchmark
        assert setup.workload == "gemm"
        assert setup.query_one("#layer-L2", Checkbox).disabled
        assert not setup.query_one("#layer-L2", Checkbox).value
        assert "applies to dense only" in static_text(setup.query_one("#reason-L2", Static))
        assert setup.query_one("#param-new_tokens", Input).disabled
        spec = setup.build_spec()
        assert spec.workload == "gemm" and spec.layers == ["L0"]
        assert "new_tokens" not in spec.params and "batch" not in spec.params
        await pilot.press("up")
        assert not setup.query_one("#layer-L2", Checkbox).disabled
        assert setup.query_one("#param-new_tokens", Input).value == "8"
