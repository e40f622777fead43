"""Live run: per-phase progress, the streaming log, NVML sparklines, and a cancel key that
really stops the child (it sets the Event that profilers.runner.run watches)."""

from __future__ import annotations

import threading
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
from workbench.tui.screens.messages import OpenRun
from workbench.tui.widgets.live import PhaseProgress, TelemetryPanel
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec


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
        self.finished = False
        self._pending_log: list[str] = []

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
            self.query_one("#live-status", Static).update(
                Text(f"running {event.get('run_id')} · c: cancel"))
        if kind in ("phase", "step", "done"):
            self.query_one(PhaseProgress).apply(event)
            if kind == "phase":
                self._pending_log.append(f"── {event.get('phase')}: {event.get('message') or ''}")
        elif kind == "log":
            stream = event.get("stream")
            prefix = "! " if stream == "stderr" else ""
            self._pending_log.append(prefix + str(event.get("line", "")).rstrip("\n"))
        elif kind == "telemetry":
            self.query_one(TelemetryPanel).add_sample(event)
        elif kind == "metric":
            self._pending_log.append(f"· {event.get('name')} = {event.get('value')} "
                                     f"{event.get('unit') or ''}")

    def _flush(self) -> None:
        """Redraw at the settings' refresh rate, however fast events arrive."""
        if self._pending_log:
            lines, self._pending_log = self._pending_log, []
            self.query_one(Log).write_lines(lines)  # Log draws plain text: no markup
        self.query_one(TelemetryPanel).redraw()

    def on_live_run_screen_run_finished(self, message: RunFinished) -> None:
        self.finished = True
        self.record = message.record
        self._flush()
        status = self.query_one("#live-status", Static)
        if message.record is None:
            text = Text("✗ could not run: ", style="bold")
            text.append(str(message.error))
            text.append("  (Esc: back)")
            status.update(text)
            self.query_one(PhaseProgress).apply({"event": "done", "status": "failed"})
        elif message.record.status is RunStatus.OK:
            status.update(Text(f"✓ done: {message.record.id}"))
            self.post_message(OpenRun(message.record.id, replace=True))
        else:
            text = Text(f"✗ {message.record.status}", style="bold")
            if message.record.error:
                text.append(f": {message.record.error}")
            text.append("  (Enter: results · Esc: back)")
            status.update(text)
        self.refresh_bindings()

    # ---- keys ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_results":
            return self.record is not None
        return True

    def action_cancel_or_back(self) -> None:
        if self.finished:
            self.dismiss()
            return
        if not self.cancel_event.is_set():
            self.cancel_event.set()
            self.query_one("#live-status", Static).update(
                Text("cancelling… (SIGINT, then SIGKILL)"))
            self.query_one(PhaseProgress).apply({"event": "done", "status": "cancelled"})

    def action_open_results(self) -> None:
        if self.record is not None:
            self.post_message(OpenRun(self.record.id, replace=True))
