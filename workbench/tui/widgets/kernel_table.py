"""A Line-API table over a columnar KernelTable: only the visible rows are ever formatted.

The DataFrame's columns are pulled out once as numpy arrays; sorting and filtering produce an
index array (the view), and ``render_line`` formats the one row it is asked for (with a small
cache). 100k rows sort and filter in milliseconds and scroll at the speed of the terminal.
Kernel names are drawn as plain segments: no markup is ever parsed from them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
from rich.cells import set_cell_size
from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.export.fmt import fmt_count, fmt_shape

# key, title, width (None: takes what is left), right-aligned
COLUMNS: tuple[tuple[str, str, int | None, bool], ...] = (
    ("name", "Kernel", None, False),
    ("category", "Category", 12, False),
    ("dur_ns", "Dur µs", 10, True),
    ("start_ns", "Start ms", 10, True),
    ("stream", "Strm", 4, True),
    ("grid", "Grid", 13, False),
    ("block", "Block", 11, False),
    ("registers", "Regs", 4, True),
)
SORT_KEYS = ("dur_ns", "name", "category", "start_ns")
MIN_NAME_WIDTH = 30
DROP_ORDER = ("block", "registers", "start_ns", "grid", "stream")  # first dropped when narrow
CACHE_ROWS = 512


class KernelTableView(ScrollView, can_focus=True):
    """Sortable, filterable kernel list; row 0 of the widget is a fixed header."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("s", "cycle_sort", "Sort", id="kernels.sort"),
        Binding("r", "reverse_sort", "Reverse", id="kernels.reverse"),
    ]
    COMPONENT_CLASSES = {"kernel-table--header", "kernel-table--cursor"}

    cursor: reactive[int] = reactive(0, always_update=True, repaint=True)

    class CursorMoved(Message):
        """The highlighted kernel changed; ``row`` indexes the DataFrame (None: no rows)."""

        def __init__(self, row: int | None) -> None:
            super().__init__()
            self.row = row

    class ViewChanged(Message):
        def __init__(self, shown: int, total: int, sort_key: str, descending: bool) -> None:
            super().__init__()
            self.shown, self.total = shown, total
            self.sort_key, self.descending = sort_key, descending

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cols: dict[str, Any] = {}
        self._n = 0
        self._view = np.arange(0, dtype=np.int64)
        self._sort_key = "dur_ns"
        self._descending = True
        self._filter = ""
        self._cache: OrderedDict[tuple[int, int], str] = OrderedDict()

    # ---- data ----------------------------------------------------------------------------
    def set_table(self, table: pd.DataFrame | None) -> None:
        self._cache.clear()
        self._cols = {}
        self._n = 0 if table is None else len(table)
        if table is not None and self._n:
            for key in ("name", "category"):
                cat = table[key] if isinstance(table[key].dtype, pd.CategoricalDtype) else \
                    table[key].astype("category")
                self._cols[key] = (np.asarray(cat.cat.categories.astype(str), dtype=object),
                                   cat.cat.codes.to_numpy())
            for key in ("dur_ns", "start_ns", "stream", "registers"):
                self._cols[key] = pd.to_numeric(table[key], errors="coerce").to_numpy(
                    dtype="float64", na_value=np.nan)
            for key in ("grid", "block"):
                self._cols[key] = table[key].to_numpy(dtype=object)
        self._refresh_view()

    @property
    def filter_text(self) -> str:
        return self._filter

    @filter_text.setter
    def filter_text(self, text: str) -> None:
        self._filter = text.strip().lower()
        self._refresh_view()

    @property
    def shown(self) -> int:
        return len(self._view)

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        self._sort_key = key
        self._descending = (key == "dur_ns") if descending is None else descending
        self._refresh_view()

    def _row_order(self) -> np.ndarray:
        key = self._sort_key
        if key in ("name", "category"):
            categories, codes = self._cols[key]
            rank = np.empty(len(categories), dtype=np.int64)
            rank[np.argsort(np.char.lower(categories.astype(str)), kind="stable")] = \
                np.arange(len(categories))
            values = rank[codes].astype("float64")
            values[codes < 0] = np.nan
        else:
            values = self._cols[key]
        # Negate for descending so that missing values (NaN) stay last either way.
        return np.argsort(-values if self._descending else values, kind="stable")

    def _filter_mask(self) -> np.ndarray | None:
        if not self._filter:
            return None
        mask = np.zeros(self._n, dtype=bool)
        for key in ("name", "category"):
            categories, codes = self._cols[key]
            hits = np.flatnonzero([self._filter in c.lower() for c in categories])
            mask |= np.isin(codes, hits)
        return mask

    def _refresh_view(self) -> None:
        if not self._n:
            self._view = np.arange(0, dtype=np.int64)
        else:
            order = self._row_order()
            mask = self._filter_mask()
            self._view = order if mask is None else order[mask[order]]
        self.virtual_size = Size(self.size.width, len(self._view) + 1)
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.post_message(self.ViewChanged(len(self._view), self._n, self._sort_key,
                                           self._descending))
        self.refresh()

    def current_row(self) -> int | None:
        return int(self._view[self.cursor]) if len(self._view) else None

    # ---- actions -------------------------------------------------------------------------
    def watch_cursor(self, cursor: int) -> None:
        rows_visible = max(self.scrollable_content_region.height - 1, 1)
        top = round(self.scroll_y)
        if cursor < top:
            self.scroll_to(y=cursor, animate=False)
        elif cursor >= top + rows_visible:
            self.scroll_to(y=cursor - rows_visible + 1, animate=False)
        self.post_message(self.CursorMoved(self.current_row()))

    def _move_to(self, index: int) -> None:
        if len(self._view):
            self.cursor = max(0, min(index, len(self._view) - 1))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(self.scrollable_content_region.height - 2, 1))

    def action_jump(self, where: int) -> None:
        self._move_to(len(self._view) - 1 if where < 0 else where)

    def action_cycle_sort(self) -> None:
        self.sort_by(SORT_KEYS[(SORT_KEYS.index(self._sort_key) + 1) % len(SORT_KEYS)])

    def action_reverse_sort(self) -> None:
        self.sort_by(self._sort_key, not self._descending)

    # ---- rendering -----------------------------------------------------------------------
    def on_resize(self) -> None:
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self._view) + 1)

    def _columns(self, total: int) -> list[tuple[str, str, int | None, bool]]:
        """The columns that fit: narrow terminals drop the least useful ones first."""
        columns = list(COLUMNS)
        for key in DROP_ORDER:
            fixed = sum(c[2] or 0 for c in columns) + len(columns)
            if total - fixed >= MIN_NAME_WIDTH:
                break
            columns = [c for c in columns if c[0] != key]
        return columns

    def _line(self, cells: dict[str, str], width: int) -> str:
        columns = self._columns(width)
        fixed = sum(c[2] or 0 for c in columns) + len(columns) - 1
        parts = []
        for key, _, cell_width, right in columns:
            cell_width = cell_width or max(width - fixed, 8)
            text = cells[key]
            text = text if len(text) <= cell_width else text[: cell_width - 1] + "…"
            parts.append(set_cell_size(text.rjust(cell_width) if right else text, cell_width))
        return set_cell_size(" ".join(parts), width)

    def _format_row(self, row: int, width: int) -> str:
        key = (row, width)
        text = self._cache.get(key)
        if text is not None:
            self._cache.move_to_end(key)
            return text
        cells: dict[str, str] = {}
        for col, _, _, _ in COLUMNS:
            if col in ("name", "category"):
                categories, codes = self._cols[col]
                code = codes[row]
                cells[col] = str(categories[code]) if code >= 0 else "n/a"
            elif col == "dur_ns":
                value = self._cols[col][row]
                cells[col] = "n/a" if np.isnan(value) else f"{value / 1e3:,.2f}"
            elif col == "start_ns":
                value = self._cols[col][row]
                cells[col] = "n/a" if np.isnan(value) else f"{value / 1e6:,.3f}"
            elif col in ("grid", "block"):
                cells[col] = fmt_shape(self._cols[col][row])
            else:
                cells[col] = fmt_count(self._cols[col][row])
        text = self._line(cells, width)
        self._cache[key] = text
        if len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)
        return text

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            titles = {}
            for key, title, _, _ in COLUMNS:
                arrow = ("↓" if self._descending else "↑") if key == self._sort_key else ""
                titles[key] = title + arrow
            style = base + self.get_component_rich_style("kernel-table--header")
            return Strip([Segment(self._line(titles, width), style)], width)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._view):
            if index == 0 and y == 1:
                message = "no kernels match the filter" if self._n else "no kernels"
                return Strip([Segment(set_cell_size(message, width), base)], width)
            return Strip.blank(width, base)
        text = self._format_row(int(self._view[index]), width)
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("kernel-table--cursor")
        return Strip([Segment(text, style)], width)
