"""Sessions: list, filter, open, delete (after a confirmation), mark two and compare."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from sessions.records import RunStatus, SessionKind, SessionRow
from sessions.store import SessionStore
from workbench.api.services import Services
from workbench.api.sessions import delete_session
from workbench.export.fmt import fmt_num
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.messages import EditRun, OpenRun
from workloads.errors import WorkbenchError

# Ranked as htop / nvitop rank theirs: what fits 80 columns first (when, the headline result,
# status, what ran), then the rest; the highlighted row's full id is on the status line.
COLUMNS = (("mark", ""), ("created_at", "date"), ("headline", "result"), ("status", "status"),
           ("workload", "workload/preset"), ("layers", "layers"), ("profiler", "profiler"),
           ("label", "label"), ("id", "id"))
SORTS = ("created_at", "headline", "status", "workload", "profiler", "label")  # s cycles
MAX_CELL = 28  # wider cells end in "…"; the full text is in the filter and the results


def date_text(created_at: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(created_at))


def what_ran(row: SessionRow) -> str:
    """workload/preset; a saved analysis (no workload) says so, with the artifact's format."""
    if row.kind is SessionKind.ANALYSIS or not row.workload:
        return f"analysis ({row.profiler or 'artifact'})" if row.kind is SessionKind.ANALYSIS \
            else str(row.kind)
    return f"{row.workload}/{row.preset}" if row.preset else row.workload


def result_text(row: SessionRow) -> str:
    """The headline, for a run that finished ok only (a cancelled run's number is partial)."""
    if row.status is not RunStatus.OK or row.headline is None:
        return ""
    return f"{fmt_num(row.headline, 4)} {row.headline_unit}".strip()


def cell(text: str, right: bool = False) -> Text:
    if len(text) > MAX_CELL:
        text = text[:MAX_CELL - 1] + "…"
    return Text(text, justify="right" if right else "left", no_wrap=True)  # Text: no markup


class SessionsScreen(Screen):
    CSS_PATH = "sessions.tcss"
    BINDINGS = [
        Binding("o,enter", "open", "Open", id="sessions.open"),
        Binding("space", "mark", "Mark", id="sessions.mark"),
        Binding("c", "compare", "Compare 2", id="sessions.compare"),
        Binding("d,delete", "delete", "Delete", id="sessions.delete"),
        Binding("slash", "focus_filter", "Filter", id="sessions.filter"),
        Binding("s", "cycle_sort", "Sort", id="sessions.sort"),
        Binding("S", "reverse_sort", "Reverse sort", id="sessions.reverse", show=False),
        Binding("r", "reload", "Reload", id="sessions.reload", show=False),
        Binding("ctrl+r", "rerun", "Re-run", id="sessions.rerun", show=False),
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
        self.sort, self.descending = "created_at", True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter: date, id, status, workload, layers, profiler, label",
                    id="sessions-filter", compact=True)
        yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        yield Static(Text("loading…"), id="sessions-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        table.focus()
        self.action_reload()

    # ---- loading (SQLite in a thread) ----------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions")
    def action_reload(self) -> None:
        try:
            self.post_message(self.Loaded(self._list()))
        except Exception as exc:
            self.post_message(self.Loaded(None, str(exc)))

    def _list(self) -> list[SessionRow]:
        """The API's list, in the chosen order (``workbench.api.sessions.SORT_KEYS``)."""
        return self.services.list_sessions(self.store, sort=self.sort,
                                           descending=self.descending)

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
                if any(needle in str(getattr(r, f) or "").lower() for f in fields)
                or needle in date_text(r.created_at) or needle in what_ran(r).lower()]

    def _redraw(self) -> None:
        table = self.query_one(DataTable)
        keep = self.current_id()
        table.clear()
        for row in self.visible_rows():
            mark = "●" if row.id in self.marked else " "
            table.add_row(Text(mark), cell(date_text(row.created_at)),
                          cell(result_text(row), right=True), cell(row.status.value),
                          cell(what_ran(row)), cell(row.layers), cell(row.profiler),
                          cell(row.label), Text(row.id), key=row.id)
        if keep and keep in {r.id for r in self.visible_rows()}:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_status()

    def _show_status(self) -> None:
        if not self.rows:
            self.query_one("#sessions-status", Static).update(Text(
                f"no sessions in {self.store.home} yet · f2: a new run"))
            return
        shown = len(self.visible_rows())
        arrow = "↓" if self.descending else "↑"
        current = self.current_id()
        self.query_one("#sessions-status", Static).update(Text(
            (f"{current} · " if current else "") +
            f"{shown} of {len(self.rows)} · sort {dict(COLUMNS)[self.sort]} {arrow} (s) · "
            f"marked {len(self.marked)}/2"))

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._show_status()

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

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)] if self.sort in SORTS \
            else SORTS[0]
        self.descending = self.sort in ("created_at", "headline")  # newest, fastest first
        self.action_reload()

    def action_reverse_sort(self) -> None:
        self.descending = not self.descending
        self.action_reload()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in ("mark",):
            return
        if key == self.sort:
            self.descending = not self.descending
        else:
            self.sort, self.descending = key, key in ("created_at", "headline")
        self.action_reload()

    def action_focus_filter(self) -> None:
        self.query_one("#sessions-filter", Input).focus()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        run_id = self.current_id()
        if run_id:
            self.post_message(OpenRun(run_id))

    def action_rerun(self) -> None:
        """The run form with the highlighted session's configuration (api.runs.rerun_spec)."""
        run_id = self.current_id()
        if not run_id:
            return
        try:
            spec = self.services.rerun_spec(self.store.get(run_id))
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot re-run", severity="warning")
            return
        self.post_message(EditRun(spec))

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
            self.post_message(self.Loaded(self._list()))
        except Exception as exc:
            self.post_message(self.Loaded(None, f"delete failed: {exc}"))

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.key == "escape" and isinstance(self.focused, Input):
            event.stop()
            self.query_one(DataTable).focus()

    def action_back(self) -> None:
        self.dismiss()
