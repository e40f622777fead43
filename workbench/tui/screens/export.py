"""Modal: where to export a report. One path (prefilled, editable); the Markdown goes there and
the JSON beside it under the same name. Returns the Markdown path, or None on Esc."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ExportScreen(ModalScreen[Path | None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    def __init__(self, what: str, default_path: Path) -> None:
        super().__init__()
        self.what, self.default_path = what, default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog", classes="dialog"):
            yield Static(Text(f"Export {self.what} as Markdown (with its figures) and JSON"),
                         classes="dialog-title")
            yield Input(str(self.default_path), id="export-path")
            yield Static(Text("Enter: write · Esc: cancel · the .json goes beside the .md"),
                         classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value.strip()
        if not raw:
            self.notify("Give a file name ending in .md", severity="warning")
            return
        path = Path(raw).expanduser()
        if path.suffix.lower() not in (".md", ".markdown"):
            path = path.with_name(path.name + ".md")
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
