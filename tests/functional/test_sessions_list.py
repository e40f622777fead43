"""The sessions list (issue 19): the columns that matter fit 80 columns (date, result, status,
what ran), sorted by the API (s cycles, S reverses), a cancelled run shows no result, a saved
analysis says what it is instead of "/None", long layer lists do not wrap in the picker."""

from __future__ import annotations

import time

import pytest
from textual.widgets import OptionList

from sessions.records import RunStatus, SessionKind
from sessions.store import SessionStore
from tests.functional.conftest import BASELINE_ID, CANDIDATE_ID, screen_text, wait_until
from tests.functional.fakes import write_run
from workbench.tui.screens.pick_session import PickSessionScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen, date_text
from workloads.spec import RunSpec

pytestmark = pytest.mark.anyio
LADDER = ["L0", "L1", "L2", "L3", "L4", "L5", "L5-fp8", "L5-gemv", "L6-fp8kv", "L6-paged"]


def _extra_sessions(home) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    store = SessionStore(home)
    cancelled = write_run(store, RunSpec(layers=LADDER), 100, status="cancelled").id
    analysis = store.new_record(None, SessionKind.ANALYSIS)
    analysis.artifact_format, analysis.status = "kineto", RunStatus.OK
    analysis.finished_at = time.time()
    store.save(analysis)
    return cancelled, analysis.id


async def _open_sessions(app, pilot) -> SessionsScreen:  # type: ignore[no-untyped-def]
    await pilot.press("f3")
    await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                     and len(app.screen.rows) == 4)
    return app.screen


async def test_the_important_columns_fit_80_columns(small_home, app_factory) -> None:
    cancelled, analysis = _extra_sessions(small_home)
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        sessions = await _open_sessions(app, pilot)
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if "result" in line)
        for title in ("date", "result", "status", "workload/preset"):
            assert title in header
        row = {r.id: r for r in sessions.rows}
        candidate = next(line for line in lines if date_text(row[CANDIDATE_ID].created_at)
                         in line and "tok/s" in line)
        assert "207.9 tok/s" in candidate and "dense/tiny" in candidate
        cancelled_line = next(line for line in lines if "cancelled" in line)
        assert "tok/s" not in cancelled_line  # a cancelled run's number is not a result
        analysis_line = next(line for line in lines if "analysis" in line)
        assert "analysis (kineto)" in analysis_line and "None" not in analysis_line
        assert all(len(line) <= 80 for line in lines)


async def test_s_sorts_through_the_api_and_S_reverses(small_home, app_factory) -> None:
    _extra_sessions(small_home)
    app = app_factory(small_home)
    async with app.run_test(size=(120, 40)) as pilot:
        sessions = await _open_sessions(app, pilot)
        assert [r.created_at for r in sessions.rows] == sorted(
            (r.created_at for r in sessions.rows), reverse=True)  # newest first
        await pilot.press("s")  # by result: fastest first, runs without one last
        await wait_until(pilot, lambda: sessions.sort == "headline"
                         and sessions.rows[-1].headline is None)
        api_order = [r.id for r in SessionStore(small_home).list(order_by="headline")]
        assert [r.id for r in sessions.rows] == api_order
        assert api_order.index(CANDIDATE_ID) < api_order.index(BASELINE_ID)
        assert "sort result ↓" in screen_text(app)
        await pilot.press("S")
        await wait_until(pilot, lambda: not sessions.descending
                         and sessions.rows[0].headline is not None
                         and sessions.rows[0].id != api_order[0])
        headlines = [r.headline for r in sessions.rows if r.headline is not None]
        assert headlines == sorted(headlines)


async def test_the_baseline_picker_keeps_one_line_per_session(small_home, app_factory) -> None:
    _extra_sessions(small_home)
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        sessions = await _open_sessions(app, pilot)
        sessions.query_one("#sessions-table").move_cursor(
            row=[r.id for r in sessions.rows].index(CANDIDATE_ID))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, PickSessionScreen))
        options = app.screen.query_one(OptionList)
        assert options.option_count == 3
        assert all(options.get_option_at_index(i).prompt.no_wrap for i in range(3))
        text = screen_text(app)
        assert "L6-paged" not in text and "…" in text  # the ladder's layers end in "…"


async def test_ctrl_r_on_a_session_opens_the_form_with_its_configuration(
        small_home, app_factory) -> None:
    from textual.widgets import Checkbox

    from workbench.tui.screens.setup import RunSetupScreen

    cancelled, analysis = _extra_sessions(small_home)
    app = app_factory(small_home)
    async with app.run_test(size=(80, 24)) as pilot:
        sessions = await _open_sessions(app, pilot)
        table = sessions.query_one("#sessions-table")
        table.move_cursor(row=[r.id for r in sessions.rows].index(analysis))
        await pilot.press("ctrl+r")  # a saved analysis has no configuration: said, not run
        await pilot.pause(0.3)
        assert app.screen is sessions
        assert any(n.title == "Cannot re-run" for n in app._notifications)
        table.move_cursor(row=[r.id for r in sessions.rows].index(CANDIDATE_ID))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen))
        assert app.screen.query_one("#layer-L1", Checkbox).value
