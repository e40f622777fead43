"""The live run (issue 19): the app asks before a new run or ctrl+q cancels the run in flight;
a run that ends behind another screen does not pull the user away; the log shows numbers as
the reports do, no profiler noise, no traceback after a cancel the user asked for; the stages
in the child's order, the failed one marked; the elapsed time."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Log, Static

from sessions.records import RunStatus
from sessions.store import SessionStore
from tests.functional.conftest import wait_until
from tests.functional.fakes import FakeCore, write_run
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.live import LiveRunScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.widgets.live import PhaseProgress

pytestmark = pytest.mark.anyio

# The events of a real `dense/tiny --profiler torch` run on the CPU (workloads/run.py), in the
# order they came, steps left out; then the interrupt a cancel sends.
REAL_EVENTS = [
    {"event": "phase", "phase": "build", "message": "dense/tiny on cpu"},
    {"event": "phase", "phase": "reference", "message": "L0 reference decode"},
    {"event": "phase", "phase": "parity", "message": "applying no layers over L0; comparing to L0"},
    {"event": "phase", "phase": "warmup", "message": "2 warm-up steps"},
    {"event": "phase", "phase": "measure", "message": "5 timed steps"},
    {"event": "metric", "name": "latency_ms", "value": 0.5814369997096946, "unit": "ms"},
    {"event": "metric", "name": "tokens_per_s", "value": 3439.753577771244, "unit": "tok/s"},
    {"event": "phase", "phase": "profile", "message": "torch profiler over 3 steps"},
    {"event": "log", "line": "USDT:2026-12-01 06:45:15 32655:32655 "
                             "SyncActivityProfilerHandler.cpp:52] profiler_start"},
]
INTERRUPT = ["Traceback (most recent call last):", '  File "workloads/run.py", line 421',
             "KeyboardInterrupt"]


def _phases(widget: PhaseProgress) -> list[tuple[str, str]]:
    return [(name, state.status) for name, state in widget.phases.items()
            if state.status != "pending"]


async def test_stages_in_run_order_and_the_failed_one_marked(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)):
        phases = PhaseProgress()
        await app.screen.mount(phases)
        for event in REAL_EVENTS[:5]:
            phases.apply(event)
        assert [n for n, _ in _phases(phases)] == ["build", "reference", "parity", "warmup",
                                                   "measure"]
        assert phases.render_phases().plain.index("parity") < \
            phases.render_phases().plain.index("warmup")
        # A build that fails: the child writes result.json (phase "write"), then says failed.
        failing = PhaseProgress()
        await app.screen.mount(failing)
        for event in ({"event": "phase", "phase": "build", "message": "dense/tiny on cpu"},
                      {"event": "phase", "phase": "write", "message": "result.json"},
                      {"event": "done", "status": "failed", "error": "boom"}):
            failing.apply(event)
        assert _phases(failing) == [("build", "failed"), ("write", "done")]
        assert "✗ build" in failing.render_phases().plain


class ScriptedRun:
    """The runner's events of a real run, then blocks until cancelled (the child's interrupt
    traceback on stderr, as workloads/run.py prints it) or released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, spec, store, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        on_event({"event": "session", "run_id": "20261201-064512-ae6734"})
        for event in REAL_EVENTS:
            on_event(event)
        while not (cancel.is_set() or self.release.is_set()):
            cancel.wait(0.05)
        record = store.new_run(spec)
        if cancel.is_set():
            for line in INTERRUPT:
                on_event({"event": "log", "line": line, "stream": "stderr"})
            on_event({"event": "phase", "phase": "write", "message": "result.json"})
            record.status, record.error = RunStatus.CANCELLED, "cancelled by the user"
        else:
            record.status = RunStatus.OK
        store.save(record)
        on_event({"event": "done", "status": record.status.value, "run_id": record.id})
        return record


def _scripted_app(app_factory, tmp_path, run):  # type: ignore[no-untyped-def]
    core = FakeCore()
    services = core.services()
    services._run = run
    from workbench.tui.app import make_app
    from workbench.tui.settings import Settings

    return make_app(Settings(), tmp_path, services=services)


async def test_live_log_formats_numbers_hides_noise_and_the_cancel_traceback(
        tmp_path, app_factory) -> None:
    run = ScriptedRun()
    app = _scripted_app(app_factory, tmp_path, run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        log = live.query_one(Log)
        await wait_until(pilot, lambda: log.line_count >= 8)
        status = str(live.query_one("#live-status", Static).content)
        assert "20261201-064512-ae6734" in status and "elapsed" in status
        text = "\n".join(log.lines)
        assert "· latency_ms = 0.581 ms" in text and "· tokens_per_s = 3,440 tok/s" in text
        assert "0.5814369997096946" not in text and "USDT" not in text
        await pilot.press("c")
        await wait_until(pilot, lambda: live.finished)
        await pilot.pause(0.3)
        text = "\n".join(log.lines)
        assert "Traceback" not in text and "KeyboardInterrupt" not in text
        assert "cancelled by you" in text
        assert ("profile", "cancelled") in _phases(live.query_one(PhaseProgress))
        assert "cancelled" in str(live.query_one("#live-status", Static).content)


async def test_a_new_run_asks_before_cancelling_the_one_in_flight(tmp_path, app_factory) -> None:
    core = FakeCore(block=True)
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and core.started.is_set())
        first = app.screen
        await pilot.press("f2")  # a new form over the run: the run goes on
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen))
        assert not first.cancel_event.is_set() and first in app.screen_stack
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # the safe answer: nothing cancelled, nothing started
        assert isinstance(app.screen, RunSetupScreen) and not first.cancel_event.is_set()
        assert len(core.specs) == 1
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and app.screen is not first)
        assert first.cancel_event.is_set()
        await wait_until(pilot, lambda: first.finished and len(core.specs) == 2)
        app.screen.cancel()
        await wait_until(pilot, lambda: app.screen.finished)


async def test_quit_asks_during_a_run(tmp_path, app_factory) -> None:
    core = FakeCore(block=True)
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and core.started.is_set())
        live = app.screen
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "A run is in progress" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and app.screen is live and not live.cancel_event.is_set()
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("ctrl+q")  # again: the same dialog, not a second one over it
        assert sum(isinstance(s, ConfirmScreen) for s in app.screen_stack) == 1
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
    assert live.cancel_event.is_set()
    assert core.cancel_seen.wait(10)


async def test_quit_without_a_run_asks_nothing(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)


async def test_a_run_ending_behind_sessions_updates_its_row_and_stays_put(
        tmp_path, app_factory) -> None:
    run = ScriptedRun()
    app = _scripted_app(app_factory, tmp_path, run)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and app.screen.run_id is not None)
        live = app.screen
        write_run(SessionStore(tmp_path), live.spec, 100)  # another session in the list
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and app.screen.rows)
        sessions = app.screen
        count = len(sessions.rows)
        run.release.set()
        await wait_until(pilot, lambda: live.finished and len(sessions.rows) == count + 1)
        await pilot.pause(0.3)
        assert app.screen is sessions  # no jump to the results
        assert any(n.title == "Run finished" for n in app._notifications)
        assert live.record is not None and live.record.id in {r.id for r in sessions.rows}


async def test_opening_a_running_session_goes_to_its_live_view(tmp_path, app_factory) -> None:
    core = FakeCore(block=True)
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and core.started.is_set())
        live = app.screen
        live.run_id = "20261201-000000-running"  # what the runner's "session" event names
        from workbench.tui.screens.messages import OpenRun

        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        app.screen.post_message(OpenRun("20261201-000000-running"))
        await wait_until(pilot, lambda: app.screen is live)
        assert not isinstance(app.screen, ResultsScreen) and not live.cancel_event.is_set()
        live.cancel()
        await wait_until(pilot, lambda: live.finished)


async def test_a_long_failure_is_shown_in_full_at_80_columns(tmp_path) -> None:
    """"✗ could not run: Nsight Compute (ncu) is not installed …; install" was cut at 80."""
    from workbench.tui.app import make_app
    from workbench.tui.settings import Settings
    from workloads.errors import WorkbenchError

    reason = ("Nsight Compute (ncu) is not installed or not on PATH; install it or set "
              "AIPERF_NCU=/path/to/ncu")

    def refuse(spec, store, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        raise WorkbenchError(reason)

    services = FakeCore().services()
    services._run = refuse
    app = make_app(Settings(), tmp_path, services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and app.screen.finished)
        await pilot.pause()
        from tests.functional.conftest import screen_text

        flat = " ".join(screen_text(app).split())
        assert f"✗ could not run: {reason} (Esc: back)" in flat


async def test_the_status_gives_the_elapsed_time_and_the_phase_time_left(
        tmp_path, monkeypatch) -> None:
    from workbench.tui.app import make_app
    from workbench.tui.screens import live as live_module
    from workbench.tui.settings import Settings

    now = [100.0]
    monkeypatch.setattr(live_module, "clock", lambda: now[0])
    stepped = threading.Event()

    def measured(spec, store, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        on_event({"event": "phase", "phase": "measure", "message": "5 timed steps"})
        stepped.wait(5)
        on_event({"event": "step", "phase": "measure", "i": 2, "n": 5})
        cancel.wait(20)
        record = store.new_run(spec)
        record.status = RunStatus.CANCELLED
        store.save(record)
        return record

    services = FakeCore().services()
    services._run = measured
    app = make_app(Settings(), tmp_path, services=services)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        await wait_until(pilot, lambda: live._phase[0] == "measure")
        now[0] = 104.0  # the second step arrives
        stepped.set()
        await wait_until(pilot, lambda: live._phase[2] == 2)
        now[0] = 105.0  # two steps in 5 s: the three left take about 7.5 s
        await pilot.pause(0.5)
        status = str(live.query_one("#live-status", Static).content)
        assert "5.0 s elapsed" in status and "measure 2/5, ~7.5 s left" in status
        live.cancel()
        await wait_until(pilot, lambda: live.finished)
