"""Sessions: list, filter, open, delete (after a confirmation), mark two and compare."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from sessions.records import SessionRow
from sessions.store import SessionStore
from workbench.api.services import Services
from workbench.api.sessions import delete_session
from workbench.export.fmt import fmt_float
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.messages import OpenRun

COLUMNS = ("", "id", "status", "workload", "layers", "profiler", "headline", "label")


class SessionsScreen(Screen):
    CSS_PATH = "sessions.tcss"
    BINDINGS = [
        Binding("o,enter", "open", "Open", id="sessions.open"),
        Binding("space", "mark", "Mark", id="sessions.mark"),
        Binding("c", "compare", "Compare 2", id="sessions.compare"),
        Binding("d,delete", "delete", "Delete", id="sessions.delete"),
        Binding("slash", "focus_filter", "Filter", id="sessions.filter"),
        Binding("r", "reload", "Reload", id="sessions.reload", show=False),
        Binding("escape", "back", "Back", id="sessions.back"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[SessionRow] | None, error: str | None = None) -> None:
            super().__init__()
            self.rows, self.error = rows, error

    def __init__(self, store: SessionStore, services: Services) -> None:
        super().__init__()
        self.store, self.services = store, services
        self.rows: list[SessionRow] = []
        self.marked: list[str] = []  # in marking order
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter: id, status, workload, layers, profiler, label",
                    id="sessions-filter", compact=True)
        yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        yield Static(Text("loading…"), id="sessions-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column or "mark")
        table.focus()
        self.action_reload()

    # ---- loading (SQLite in a thread) ----------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions")
    def action_reload(self) -> None:
        try:
            self.post_message(self.Loaded(self.services.list_sessions(self.store)))
        except Exception as exc:
            self.post_message(self.Loaded(None, str(exc)))

    def on_sessions_screen_loaded(self, message: Loaded) -> None:
        if message.rows is None:
            self.query_one("#sessions-status", Static).update(Text(f"✗ {message.error}"))
            return
        self.rows = message.rows
        ids = {r.id for r in self.rows}
        self.marked = [m for m in self.marked if m in ids]
        self._redraw()

    def visible_rows(self) -> list[SessionRow]:
        needle = self.filter_text.lower()
        if not needle:
            return self.rows
        fields = ("id", "status", "workload", "preset", "layers", "profiler", "label", "device")
        return [r for r in self.rows
                if any(needle in str(getattr(r, f) or "").lower() for f in fields)]

    def _redraw(self) -> None:
        table = self.query_one(DataTable)
        keep = self.current_id()
        table.clear()
        for row in self.visible_rows():
            value = row.headline
            headline = "n/a" if value is None else f"{fmt_float(value, 1)} {row.headline_unit}"
            mark = "●" if row.id in self.marked else " "
            cells = [mark, row.id, row.status.value, f"{row.workload}/{row.preset}",
                     row.layers, row.profiler, headline, row.label]
            table.add_row(*(Text(str(c)) for c in cells), key=row.id)  # Text: no markup
        if keep and keep in {r.id for r in self.visible_rows()}:
            table.move_cursor(row=table.get_row_index(keep))
        shown = len(self.visible_rows())
        self.query_one("#sessions-status", Static).update(Text(
            f"{shown} of {len(self.rows)} sessions · marked {len(self.marked)}/2 · "
            "space: mark · c: compare · d: delete"))

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    # ---- actions -------------------------------------------------------------------------
    @on(Input.Changed, "#sessions-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._redraw()

    @on(Input.Submitted, "#sessions-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#sessions-filter", Input).focus()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        run_id = self.current_id()
        if run_id:
            self.post_message(OpenRun(run_id))

    def action_mark(self) -> None:
        run_id = self.current_id()
        if not run_id:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = (self.marked + [run_id])[-2:]  # marking a third drops the oldest mark
        self._redraw()

    def action_compare(self) -> None:
        if len(self.marked) != 2:
            self.notify("Mark two sessions (space) to compare them.", severity="warning")
            return
        created = {r.id: r.created_at for r in self.rows}
        baseline, candidate = sorted(self.marked, key=lambda i: created.get(i, 0))
        self.post_message(OpenRun(candidate, baseline_id=baseline, tab="diff"))

    def action_delete(self) -> None:
        run_id = self.current_id()
        if not run_id:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete_run(run_id)

        question = Text("Delete session ")
        question.append(run_id, style="bold")
        question.append(" and its run folder? This cannot be undone.")
        self.app.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions")
    def delete_run(self, run_id: str) -> None:
        try:
            delete_session(self.store, run_id)
            self.post_message(self.Loaded(self.services.list_sessions(self.store)))
        except Exception as exc:
            self.post_message(self.Loaded(None, f"delete failed: {exc}"))

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.key == "escape" and isinstance(self.focused, Input):
            event.stop()
            self.query_one(DataTable).focus()

    def action_back(self) -> None:
        self.dismiss()
