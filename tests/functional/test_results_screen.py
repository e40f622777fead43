"""The results screen (issue 19): the Kernels tab of a CPU run offers only keys that work and
its CPU-ops table scrolls within 80 columns; the Diff tab's "why empty" is wrapped, not cut;
a long kernel name on the Roofline tab does not push the point's numbers away; the palette has
Export report and Re-run; re-run opens the form with the session's configuration."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, DataTable, Input

from sessions.store import SessionStore
from tests.functional.conftest import BASELINE_ID, CANDIDATE_ID, screen_text, wait_until
from tests.functional.fakes import KERNELS_FILE, FakeCore
from workbench import cli
from workbench.tui.app import make_app
from workbench.tui.screens.messages import OpenRun
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.settings import Settings
from workbench.tui.widgets.diff_panel import NO_KERNELS
from workbench.tui.widgets.roofline import RooflinePlot

pytestmark = pytest.mark.anyio


async def _open(app, pilot, run_id: str, tab: str = "summary") -> ResultsScreen:  # type: ignore[no-untyped-def]
    app.post_message(OpenRun(run_id, tab=tab))
    await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                     and app.screen.analysis is not None, timeout=120)
    return app.screen


@pytest.mark.torch
async def test_kernels_tab_of_a_real_cpu_run(tmp_path) -> None:
    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "run", "--quiet", "--profiler", "torch"]) == 0
    run_id = SessionStore(home).list()[0].id
    app = make_app(Settings(), home)
    async with app.run_test(size=(80, 16)) as pilot:
        results = await _open(app, pilot, run_id)
        await pilot.press("2")
        ops = results.query_one("#cpu-ops", DataTable)
        assert ops.display and app.focused is ops and ops.row_count >= 10
        footer = screen_text(app).splitlines()[-1]
        assert "Filter" not in footer and "Sort" not in footer and "Reverse" not in footer
        await pilot.press("slash")  # not offered: nothing happens, no hidden box takes keys
        assert app.focused is ops and not isinstance(app.focused, Input)
        width = sum(column.get_render_width(ops) for column in ops.columns.values())
        assert width <= ops.scrollable_content_region.width  # fits 80 columns
        for _ in range(ops.row_count):
            await pilot.press("down")
        assert ops.cursor_row == ops.row_count - 1 and ops.scroll_y > 0  # it scrolls
        flat = " ".join(screen_text(app).split())
        assert "CPU ops by inclusive wall time (↑ ↓ to scroll)." in flat  # wrapped, not cut


async def test_the_diff_tab_says_why_it_is_empty_in_full_at_80_columns(
        small_home, app_factory) -> None:
    store = SessionStore(small_home)
    for run_id in (BASELINE_ID, CANDIDATE_ID):  # timer runs: no kernels
        (store.run_dir(run_id) / KERNELS_FILE).unlink()
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot, CANDIDATE_ID, tab="diff")
        await wait_until(pilot, lambda: "Verdict" in screen_text(app))
        flat = " ".join(" ".join(screen_text(app).split()).split())
        assert " ".join(NO_KERNELS.split()) in flat.replace("  ", " ")


async def test_a_long_kernel_name_leaves_the_numbers_on_screen(
        small_home, app_factory) -> None:
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        results = await _open(app, pilot, CANDIDATE_ID)
        await pilot.press("3")
        plot = results.query_one(RooflinePlot)
        plot._points.loc[1, "name"] = "cudnn_generated_fort_native_sdpa_sm90_" + "x" * 120
        plot.selected = 1
        await pilot.pause()
        lines = screen_text(app).splitlines()
        title = next(line for line in lines if line.startswith(" [2/"))
        assert title.endswith("…") and len(title) <= 80
        numbers = lines[lines.index(title) + 1]
        assert "FLOP/s" in numbers and "intensity" in numbers


async def test_palette_export_and_rerun_open_the_form_with_the_stored_spec(
        small_home, app_factory) -> None:
    core = FakeCore(rows=1000)
    app = app_factory(small_home, core)
    async with app.run_test(size=(120, 40)) as pilot:
        results = await _open(app, pilot, CANDIDATE_ID)
        titles = [c.title for c in app.get_system_commands(results)]
        assert "Export report" in titles and "Re-run this configuration" in titles
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.probe is not None)
        form = app.screen
        assert form.query_one("#layer-L1", Checkbox).value
        assert form.query_one("#param-repeat", Input).value == str(results.record.spec.repeat)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(core.specs))
        stored = results.record.spec
        assert core.specs[0] == stored


async def test_ask_claude_checks_the_key_before_showing_the_request(
        small_home, app_factory, monkeypatch) -> None:
    from workbench.tui.screens.llm_confirm import LLMConfirmScreen

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        results = await _open(app, pilot, CANDIDATE_ID)
        assert "l Ask Claude" in screen_text(app).splitlines()[-1]  # in the footer at 80
        await pilot.press("l")
        await pilot.pause(0.3)
        assert app.screen is results and not isinstance(app.screen, LLMConfirmScreen)
        assert any(n.title == "Ask Claude" and "ANTHROPIC_API_KEY" in n.message
                   for n in app._notifications)
