"""Live run: per-phase progress, the streaming log, NVML sparklines, the elapsed time, and a
cancel key that really stops the child (it sets the Event that profilers.runner.run watches).

The run goes on when another screen covers this one (Sessions, a new setup form); when it ends
there, the app is told (the lists reload) and nothing jumps: its results open from Sessions."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static

from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from workbench.api.services import Services
from workbench.export.fmt import fmt_num
from workbench.tui.screens.messages import OpenRun, RunStored
from workbench.tui.widgets.live import PhaseProgress, TelemetryPanel
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

clock = time.monotonic  # the elapsed time's clock (snapshot tests stop it)
# Lines the profilers' own libraries print that say nothing to the user (Kineto's USDT probes).
NOISE_PREFIXES = ("USDT:",)


def metric_line(event: dict[str, Any]) -> str:
    """A metric event as the reports write it: 3 significant digits, the unit."""
    return f"· {event.get('name')} = {fmt_num(event.get('value'), 3, str(event.get('unit') or ''))}"


def fmt_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes else f"{seconds:.1f} s"


class LiveRunScreen(Screen):
    CSS_PATH = "live.tcss"
    BINDINGS = [
        Binding("c,escape", "cancel_or_back", "Cancel run", id="live.cancel"),
        Binding("enter", "open_results", "Results", id="live.results"),
    ]

    class RunEvent(Message):
        """One progress event from the runner, posted from the worker thread."""

        def __init__(self, event: dict[str, Any]) -> None:
            super().__init__()
            self.event = event

    class RunFinished(Message):
        def __init__(self, record: RunRecord | None, error: str | None = None) -> None:
            super().__init__()
            self.record, self.error = record, error

    def __init__(self, spec: RunSpec, services: Services, store: SessionStore,
                 refresh_hz: float = 4.0) -> None:
        super().__init__()
        self.spec, self.services, self.store = spec, services, store
        self.refresh_hz = refresh_hz
        self.cancel_event = threading.Event()
        self.record: RunRecord | None = None
        self.run_id: str | None = None  # from the runner's "session" event
        self.finished = False
        self.started_at = clock()
        self.ended_at: float | None = None
        self._pending_log: list[str] = []
        self._stderr_hidden = 0  # stderr lines left out after a cancel (they are in the log)
        self._phase: tuple[str | None, float, int, int] = (None, 0.0, 0, 0)  # name, start, i, n

    @property
    def in_flight(self) -> bool:
        """Running, and no cancel asked for."""
        return not self.finished and not self.cancel_event.is_set()

    def describe(self) -> str:
        spec = self.spec
        what = f"{spec.workload}/{spec.preset} {','.join(spec.layers)}"
        return f"{self.run_id} ({what})" if self.run_id else what

    def compose(self) -> ComposeResult:
        yield Header()
        spec = self.spec
        yield Static(Text(f"{spec.workload}/{spec.preset} · layers {','.join(spec.layers)} · "
                          f"profiler {spec.profiler} · repeat {spec.repeat} · timeout "
                          f"{spec.timeout_s:g}s"), id="live-title")
        yield PhaseProgress(id="live-phases")
        yield TelemetryPanel(id="live-telemetry")
        yield Log(id="live-log", max_lines=5000, auto_scroll=True)
        yield Static(Text("starting… · c: cancel"), id="live-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TelemetryPanel).display = False
        self.set_interval(1.0 / self.refresh_hz, self._flush)
        self.start_run()

    def on_unmount(self) -> None:
        # Leaving the screen (or quitting) must not leave a child running.
        if not self.finished:
            self.cancel_event.set()

    # ---- the run (a thread worker; events come back as messages) -------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="run")
    def start_run(self) -> None:
        def on_event(event: dict[str, Any]) -> None:
            self.post_message(self.RunEvent(dict(event)))  # post_message is thread-safe

        try:
            record = self.services.run(self.spec, self.store, on_event, self.cancel_event)
        except WorkbenchError as exc:  # e.g. the profiler is not available here
            self.post_message(self.RunFinished(None, exc.one_line()))
            return
        except Exception as exc:  # the runner's own failures arrive as records; this is a bug
            self.post_message(self.RunFinished(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.RunFinished(record))

    def on_live_run_screen_run_event(self, message: RunEvent) -> None:
        event = message.event
        kind = event.get("event")
        if kind == "session":
            self.run_id = str(event.get("run_id") or "") or None
        if kind == "phase" or (kind == "step" and event.get("phase") != self._phase[0]):
            self._phase = (str(event.get("phase")), clock(), 0, 0)
        if kind == "step":
            self._phase = (self._phase[0], self._phase[1], int(event.get("i") or 0),
                           int(event.get("n") or 0))
        if kind in ("phase", "step", "done"):
            self.query_one(PhaseProgress).apply(event)
            if kind == "phase":
                self._pending_log.append(f"── {event.get('phase')}: {event.get('message') or ''}")
        elif kind == "log":
            self._log_line(str(event.get("line", "")).rstrip("\n"), event.get("stream"))
        elif kind == "telemetry":
            self.query_one(TelemetryPanel).add_sample(event)
        elif kind == "metric":
            self._pending_log.append(metric_line(event))

    def _log_line(self, line: str, stream: object) -> None:
        if line.startswith(NOISE_PREFIXES):
            return
        if stream == "stderr" and self.cancel_event.is_set():
            # The interrupt the user asked for: its traceback says nothing new.
            self._stderr_hidden += 1
            return
        self._pending_log.append(("! " if stream == "stderr" else "") + line)

    def _flush(self) -> None:
        """Redraw at the settings' refresh rate, however fast events arrive."""
        if self._pending_log:
            lines, self._pending_log = self._pending_log, []
            self.query_one(Log).write_lines(lines)  # Log draws plain text: no markup
        self.query_one(TelemetryPanel).redraw()
        if not self.finished:
            self._show_status()

    def elapsed(self) -> float:
        return (self.ended_at or clock()) - self.started_at

    def _show_status(self) -> None:
        if self.cancel_event.is_set():
            text = f"cancelling… (SIGINT, then SIGKILL) · {fmt_elapsed(self.elapsed())}"
        else:
            text = (f"running {self.run_id or '…'} · {fmt_elapsed(self.elapsed())} elapsed"
                    f"{self._phase_eta()} · c: cancel")
        self.query_one("#live-status", Static).update(Text(text))

    def _phase_eta(self) -> str:
        """The current phase's time left, from its steps so far (none before the first)."""
        name, started, done, total = self._phase
        if not name or done < 1 or total <= done:
            return ""
        left = (clock() - started) / done * (total - done)
        return f" · {name} {done}/{total}, ~{fmt_elapsed(left)} left"

    def on_live_run_screen_run_finished(self, message: RunFinished) -> None:
        self.finished = True
        self.ended_at = clock()
        self.record = message.record
        if self._stderr_hidden:
            self._pending_log.append(f"── cancelled by you: the child's {self._stderr_hidden} "
                                     "lines of stderr after the interrupt are in the session's "
                                     "log")
        self._flush()
        status = self.query_one("#live-status", Static)
        took = f" in {fmt_elapsed(self.elapsed())}"
        record = message.record
        if record is None:
            text = Text("✗ could not run: ", style="bold")
            text.append(str(message.error))
            text.append("  (Esc: back)")
            status.update(text)
            self.query_one(PhaseProgress).apply({"event": "done", "status": "failed"})
        elif record.status is RunStatus.OK:
            status.update(Text(f"✓ done: {record.id}{took}  (Enter: results)"))
            if self.app.screen is self:
                self.post_message(OpenRun(record.id, replace=True))
        else:
            text = Text(f"✗ {record.status}{took}", style="bold")
            if record.error:
                text.append(f": {record.error}")
            text.append("  (Enter: results · Esc: back)")
            status.update(text)
        if record is not None:
            self.post_message(RunStored(record.id))
            if self.app.screen is not self:  # finished in the background: say so, stay put
                self.app.notify(f"{record.id}: {record.status}{took}", title="Run finished",
                                severity="information" if record.status is RunStatus.OK
                                else "warning")
        self.refresh_bindings()

    # ---- keys ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_results":
            return self.record is not None
        return True

    def cancel(self) -> None:
        """Stop the child (SIGINT, then SIGKILL); the runner records it as cancelled."""
        if self.finished or self.cancel_event.is_set():
            return
        self.cancel_event.set()
        self._show_status()
        self.query_one(PhaseProgress).apply({"event": "done", "status": "cancelled"})

    def action_cancel_or_back(self) -> None:
        if self.finished:
            self.dismiss()
        else:
            self.cancel()

    def action_open_results(self) -> None:
        if self.record is not None:
            self.post_message(OpenRun(self.record.id, replace=self.app.screen is self))
