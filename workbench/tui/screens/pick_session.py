"""Modal: pick one session (e.g. the baseline of a diff). Returns the run id or None."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from sessions.records import SessionRow


def session_line(row: SessionRow) -> Text:
    """One line per session (a ladder's long layer lists end in "…" instead of wrapping)."""
    from workbench.tui.screens.sessions import date_text, result_text, what_ran

    text = Text(f"{row.id}  {date_text(row.created_at)}  {row.status.value[:9]:<9} "
                f"{what_ran(row)} {row.layers} {result_text(row) or 'n/a'}", no_wrap=True,
                overflow="ellipsis")
    if row.label:
        text.append(f"  {row.label}", style="italic")
    return text


class PickSessionScreen(ModalScreen[str | None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="pick.cancel")]

    def __init__(self, rows: list[SessionRow], title: Text) -> None:
        super().__init__()
        self.rows, self.title_text = rows, title

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield OptionList(*[Option(session_line(r), id=r.id) for r in self.rows],
                             id="pick-list")
            yield Static(Text("Enter: choose · Esc: cancel"), classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
