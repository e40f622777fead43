"""The Textual app: routing between screens and the app-wide keys. Nothing else lives here.

``make_app(settings, home, services)`` is the one factory (CLI and tests). The app never
imports torch: runs happen in a child process behind ``workbench.services``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from sessions.store import SessionStore
from workbench.screens.confirm import ConfirmScreen
from workbench.screens.help import HelpScreen, HelpSection
from workbench.screens.live import LiveRunScreen
from workbench.screens.messages import OpenRun, RunRequested
from workbench.screens.pick_session import PickSessionScreen
from workbench.screens.results import ResultsScreen
from workbench.screens.sessions import SessionsScreen
from workbench.screens.setup import RunSetupScreen
from workbench.services import Services, default_services
from workbench.settings import Settings, load_settings
from workbench.widgets.kernel_table import KernelTableView
from workbench.widgets.kernels_panel import KernelsPanel
from workbench.widgets.roofline import RooflinePlot
from workloads.errors import WorkbenchError


class WorkbenchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "aiperf workbench"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("f2", "new_run", "New run", id="app.new_run"),
        Binding("f3", "sessions", "Sessions", id="app.sessions"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, settings: Settings, store: SessionStore, services: Services) -> None:
        super().__init__()
        self.settings, self.store, self.services = settings, store, services

    def on_mount(self) -> None:
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(f"unknown theme {self.settings.theme!r}; using {self.theme}",
                        severity="warning")
        self.push_screen(RunSetupScreen(self.services, self.settings.default_profiler))

    # ---- routing -------------------------------------------------------------------------
    def _pop_to(self, screen_type: type[Screen]) -> bool:
        """Pop screens until one of ``screen_type`` is on top; False when none is stacked."""
        if not any(isinstance(s, screen_type) for s in self.screen_stack):
            return False
        while not isinstance(self.screen, screen_type):
            self.pop_screen()
        return True

    def action_new_run(self) -> None:
        if not self._pop_to(RunSetupScreen):
            self.push_screen(RunSetupScreen(self.services, self.settings.default_profiler))

    def action_sessions(self) -> None:
        if not self._pop_to(SessionsScreen):
            self.push_screen(SessionsScreen(self.store))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_sections()))

    def on_run_requested(self, message: RunRequested) -> None:
        self.push_screen(LiveRunScreen(message.spec, self.services, self.store,
                                       self.settings.refresh_hz))

    def on_open_run(self, message: OpenRun) -> None:
        try:
            record = self.store.get(message.run_id)
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot open", severity="error")
            return
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
    owners: list[tuple[str, type]] = [
        ("Everywhere", WorkbenchApp), ("Run setup", RunSetupScreen), ("Live run", LiveRunScreen),
        ("Results", ResultsScreen), ("Kernels tab", KernelsPanel),
        ("Kernel table", KernelTableView), ("Roofline tab", RooflinePlot),
        ("Sessions", SessionsScreen), ("Confirm dialog", ConfirmScreen),
        ("Pick a session", PickSessionScreen), ("Help", HelpScreen),
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
    store = SessionStore(home or settings.home)
    return WorkbenchApp(settings, store, services or default_services())


def main(settings: Settings | None = None, home: Path | str | None = None) -> None:
    make_app(settings or load_settings(), home).run()


def run_app(home: Path | None = None) -> None:
    """Entry point for `aiperf-workbench` with no subcommand."""
    main(load_settings(), home)
