"""Help: every key binding of the app, its screens and widgets, with the binding ids."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

HelpSection = tuple[str, list[Binding]]


def bindings_table(sections: list[HelpSection], key_display) -> Table:  # type: ignore[no-untyped-def]
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold", expand=True)
    table.add_column("Where", no_wrap=True)
    table.add_column("Keys", no_wrap=True)
    table.add_column("Does")
    table.add_column("Id", no_wrap=True, style="dim")
    for where, bindings in sections:
        first = True
        for binding in bindings:
            keys = ", ".join(key_display(k.strip()) for k in binding.key.split(","))
            table.add_row(Text(where if first else "", style="bold"), Text(keys),
                          Text(binding.description or binding.action), Text(binding.id or ""))
            first = False
    return table


class HelpScreen(Screen):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q", "close", "Close", id="help.close")]

    def __init__(self, sections: list[HelpSection]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="help-body", can_focus=True):
            yield Static(Text("Keys work without a mouse; ctrl+p opens the command palette, "
                              "which also lists the keys of the current screen."), id="help-intro")
            yield Static(bindings_table(self.sections, self._key_display), id="help-table")
        yield Footer()

    def _key_display(self, key: str) -> str:
        return self.app.get_key_display(Binding(key, ""))

    def action_close(self) -> None:
        self.dismiss()
