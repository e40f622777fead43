"""The Textual app: routing between screens and the app-wide keys. Nothing else lives here.

``make_app(settings, home, services)`` is the one factory (CLI and tests). The app never
imports torch: runs happen in a child process behind ``workbench.api.services``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from sessions.store import SessionStore
from workbench.api.services import Services, default_services
from workbench.tui.screens.messages import EditRun, OpenRun, RunRequested, RunStored
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.settings import Settings, load_settings
from workloads.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.tui.screens.help import HelpSection
    from workbench.tui.screens.live import LiveRunScreen

# The first screen is the run setup; the others (and pandas/numpy, which their widgets use)
# are imported when first shown, so that start-up paints within the 0.5 s target.


class WorkbenchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "aiperf workbench"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("f2", "new_run", "New run", id="app.new_run"),
        Binding("f3", "sessions", "Sessions", id="app.sessions"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, settings: Settings, store: SessionStore | Future[SessionStore],
                 services: Services) -> None:
        super().__init__()
        self.settings, self.services = settings, services
        self._store = store
        self.startup_error: WorkbenchError | None = None

    @property
    def store(self) -> SessionStore:
        """The session store; opened in a thread during start-up (its SQLite setup syncs to
        disk, which the first paint need not wait for)."""
        if isinstance(self._store, Future):
            self._store = self._store.result()
        return self._store

    def _check_store(self) -> None:
        try:
            self.store  # noqa: B018 - re-raises the opener's error, if any
        except WorkbenchError as exc:
            self.startup_error = exc  # main() raises it once the terminal is restored
            self.exit(return_code=2)

    def on_mount(self) -> None:
        self.call_after_refresh(self._check_store)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(f"unknown theme {self.settings.theme!r}; using {self.theme}",
                        severity="warning")
        self.push_screen(RunSetupScreen(self.services, self.settings.default_profiler))

    # ---- routing -------------------------------------------------------------------------
    def running(self) -> LiveRunScreen | None:
        """The live screen of the run in flight (not finished, no cancel asked), if any."""
        from workbench.tui.screens.live import LiveRunScreen

        for screen in self.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.in_flight:
                return screen
        return None

    def _pop_to(self, screen_type: type[Screen]) -> bool:
        """Pop screens until one of ``screen_type`` is on top; False when none is stacked, or
        when getting there would pop the live screen of a run in flight (that would cancel
        it: the caller pushes a new screen instead)."""
        stack = self.screen_stack
        found = [i for i, s in enumerate(stack) if isinstance(s, screen_type)]
        if not found:
            return False
        live = self.running()
        if live is not None and stack.index(live) > found[-1]:
            return False
        while not isinstance(self.screen, screen_type):
            self.pop_screen()
        return True

    def action_new_run(self) -> None:
        if not self._pop_to(RunSetupScreen):
            self.push_screen(RunSetupScreen(self.services, self.settings.default_profiler))

    def _confirm_over_run(self, question: str, then: Callable[[], None]) -> None:
        """Ask before ``then`` cancels the run in flight (nothing asked when none is)."""
        live = self.running()
        if live is None:
            then()
            return
        from workbench.tui.screens.confirm import ConfirmScreen

        if isinstance(self.screen, ConfirmScreen):  # asked already: one dialog, not a stack
            return

        text = Text("A run is in progress: ")
        text.append(live.describe(), style="bold")
        text.append(f". {question}")

        def answered(yes: bool | None) -> None:
            if yes:
                live.cancel()
                then()

        self.push_screen(ConfirmScreen(text), answered)

    async def action_quit(self) -> None:
        self._confirm_over_run("Cancel it and quit?", self.exit)

    def action_sessions(self) -> None:
        from workbench.tui.screens.sessions import SessionsScreen

        if not self._pop_to(SessionsScreen):
            self.push_screen(SessionsScreen(self.store, self.services))

    def action_help(self) -> None:
        from workbench.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_sections()))

    def on_run_requested(self, message: RunRequested) -> None:
        from workbench.tui.screens.live import LiveRunScreen

        def start() -> None:
            self.push_screen(LiveRunScreen(message.spec, self.services, self.store,
                                           self.settings.refresh_hz))

        self._confirm_over_run("Cancel it and start this one?", start)

    def on_edit_run(self, message: EditRun) -> None:
        self.push_screen(RunSetupScreen(self.services, self.settings.default_profiler,
                                        prefill=message.spec))

    def on_run_stored(self, message: RunStored) -> None:
        """A run ended (perhaps in the background): lists showing it reload in place."""
        from workbench.tui.screens.sessions import SessionsScreen

        for screen in self.screen_stack:
            if isinstance(screen, SessionsScreen):
                screen.action_reload()

    def on_open_run(self, message: OpenRun) -> None:
        from workbench.tui.screens.live import LiveRunScreen

        live = next((s for s in self.screen_stack if isinstance(s, LiveRunScreen)
                     and s.run_id == message.run_id and not s.finished), None)
        if live is not None:  # a run still going: its live view, not an all-n/a results page
            while self.screen is not live:
                self.pop_screen()
            return
        try:
            record = self.store.get(message.run_id)
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot open", severity="error")
            return
        from workbench.tui.screens.results import ResultsScreen

        screen = ResultsScreen(record, self.services, self.store, message.baseline_id,
                               message.tab)
        if message.replace:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    # ---- command palette: app commands plus every key of the current screen --------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("New run", "Set up and start a run (F2)", self.action_new_run)
        yield SystemCommand("Sessions", "List, open, compare, delete runs (F3)",
                            self.action_sessions)
        yield SystemCommand("Help", "Every key binding (F1)", self.action_help)
        seen = {"app.new_run", "app.sessions", "app.help"}
        from workbench.tui.screens.results import ResultsScreen

        if isinstance(screen, ResultsScreen):
            yield SystemCommand("Export report", "Markdown and JSON of this session, or of the "
                                "diff on the Diff tab (key e)", screen.action_export)
            yield SystemCommand("Re-run this configuration", "The run form with this "
                                "session's spec (ctrl+r)", screen.action_rerun)
            seen |= {"results.export", "results.rerun"}
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.id in seen or not active.enabled:
                continue
            seen.add(binding.id or binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(binding.description, f"key {key} · {binding.id or ''}",
                                partial(self.run_action, binding.action, active.node))
        yield from super().get_system_commands(screen)


def help_sections() -> list[HelpSection]:
    """The bindings the help screen lists, per screen and widget."""
    from workbench.tui.screens.confirm import ConfirmScreen
    from workbench.tui.screens.export import ExportScreen
    from workbench.tui.screens.help import HelpScreen
    from workbench.tui.screens.live import LiveRunScreen
    from workbench.tui.screens.pick_session import PickSessionScreen
    from workbench.tui.screens.results import ResultsScreen
    from workbench.tui.screens.sessions import SessionsScreen
    from workbench.tui.widgets.kernel_table import KernelTableView
    from workbench.tui.widgets.kernels_panel import KernelsPanel
    from workbench.tui.widgets.roofline import RooflinePlot

    owners: list[tuple[str, Any]] = [
        ("Everywhere", WorkbenchApp), ("Run setup", RunSetupScreen), ("Live run", LiveRunScreen),
        ("Results", ResultsScreen), ("Kernels tab", KernelsPanel),
        ("Kernel table", KernelTableView), ("Roofline tab", RooflinePlot),
        ("Sessions", SessionsScreen), ("Confirm dialog", ConfirmScreen),
        ("Pick a session", PickSessionScreen), ("Export dialog", ExportScreen),
        ("Help", HelpScreen),
    ]
    sections: list[HelpSection] = []
    for where, owner in owners:
        bindings = [b for b in owner.BINDINGS if isinstance(b, Binding)]
        if owner is KernelTableView:
            bindings = [b for b in bindings if b.id] + [
                Binding("up,down,pageup,pagedown,home,end", "", "Move the highlighted row")]
        sections.append((where, bindings))
    sections.append(("Everywhere", [Binding("ctrl+p", "command_palette", "Command palette")]))
    return sections


def make_app(settings: Settings | None = None, home: Path | str | None = None,
             services: Services | None = None) -> WorkbenchApp:
    """The one factory: the CLI, ``run_app`` and the tests build the app here."""
    settings = settings or Settings()
    store: Future[SessionStore] = Future()

    def open_store() -> None:
        try:
            store.set_result(SessionStore(home or settings.home))
        except BaseException as exc:  # handed to whoever asks for the store
            store.set_exception(exc)

    threading.Thread(target=open_store, name="open-session-store", daemon=True).start()
    return WorkbenchApp(settings, store, services or default_services())


def main(settings: Settings | None = None, home: Path | str | None = None) -> None:
    app = make_app(settings or load_settings(), home)
    app.run()
    if app.startup_error is not None:  # e.g. an unwritable --home: one line, exit code 2
        raise app.startup_error


def run_app(home: Path | None = None) -> None:
    """Entry point for `aiperf-workbench` with no subcommand."""
    main(load_settings(), home)
