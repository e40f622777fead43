"""The Kernels tab: a filter box over the lazy kernel table, a status line and the details of
the highlighted kernel (name shown literally, never as markup)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from workbench.export.fmt import NA, fmt_count, fmt_ns, fmt_rate, fmt_shape
from workbench.tui.widgets.kernel_table import KernelTableView

CPU_OP_COLUMNS = (("name", "CPU op"), ("count", "Calls"), ("total_ns", "Total"),
                  ("mean_ns", "Mean"), ("flops", "FLOPs"))


def fill_cpu_ops(table: DataTable, ops: pd.DataFrame) -> None:
    """analyzers.breakdown.cpu_op_breakdown rows; names as Text (literal, never markup)."""
    table.clear(columns=True)
    columns = [(key, title) for key, title in CPU_OP_COLUMNS if key in ops.columns]
    for key, title in columns:
        table.add_column(title, key=key)
    for row in ops.itertuples(index=False):
        cells = []
        for key, _ in columns:
            value = getattr(row, key)
            if key == "name":
                cells.append(Text(str(value)))
            elif key == "count":
                cells.append(Text(fmt_count(value), justify="right"))
            elif key == "flops":
                cells.append(Text(fmt_rate(value), justify="right"))
            else:
                cells.append(Text(fmt_ns(value), justify="right"))
        table.add_row(*cells)


class KernelsPanel(Vertical):
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="kernels.filter"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._table: pd.DataFrame | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter by name or category (Esc: back to the table)",
                    id="kernel-filter")
        yield KernelTableView(id="kernel-table")
        yield DataTable(id="cpu-ops", cursor_type="row")
        yield Static(Text("Loading kernels…"), id="kernel-status")
        yield Static(Text(""), id="kernel-details")

    def on_mount(self) -> None:
        self.query_one("#cpu-ops", DataTable).display = False

    def set_table(self, table: pd.DataFrame | None, notes: list[str] | None = None,
                  cpu_ops: pd.DataFrame | None = None) -> None:
        """Show the kernel table; a trace without GPU kernels (a CPU run) shows its CPU ops."""
        has_kernels = table is not None and len(table) > 0
        show_ops = not has_kernels and cpu_ops is not None and len(cpu_ops) > 0
        self._table = table if has_kernels else None
        self.query_one(KernelTableView).set_table(self._table)
        # Only what has rows is shown (a filter box or table with nothing in it is a dead key).
        for widget in (self.query_one(KernelTableView), self.query_one("#kernel-filter")):
            widget.display = has_kernels
        self.query_one("#cpu-ops", DataTable).display = show_ops
        self.screen.refresh_bindings()
        status = self.query_one("#kernel-status", Static)
        if show_ops and cpu_ops is not None:
            fill_cpu_ops(self.query_one("#cpu-ops", DataTable), cpu_ops)
            status.update(Text(f"No GPU kernels in this trace (a CPU run): the top {len(cpu_ops)} "
                               "CPU ops by inclusive wall time (↑ ↓ to scroll)."))
        elif not has_kernels:
            reason = "; ".join(notes or []) or "the timer profiler records none; use torch, " \
                "ncu or nsys"
            status.update(Text(f"No kernel table for this run: {reason}."))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_filter":  # offered only over the kernel table it filters
            return self._table is not None
        return True

    def action_focus_filter(self) -> None:
        if self._table is not None:
            self.query_one("#kernel-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one(KernelTableView).filter_text = event.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(KernelTableView).focus()

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.key == "escape" and isinstance(self.app.focused, Input):
            event.stop()
            self.query_one(KernelTableView).focus()

    def on_kernel_table_view_view_changed(self, event: KernelTableView.ViewChanged) -> None:
        event.stop()
        if self._table is None:
            return
        arrow = "↓" if event.descending else "↑"
        self.query_one("#kernel-status", Static).update(Text(
            f"{event.shown:,} of {event.total:,} kernels · sort {event.sort_key} {arrow} · "
            "s: sort  r: reverse  /: filter"))

    def on_kernel_table_view_cursor_moved(self, event: KernelTableView.CursorMoved) -> None:
        event.stop()
        details = self.query_one("#kernel-details", Static)
        if self._table is None or event.row is None:
            details.update(Text(""))
            return
        row = self._table.iloc[event.row]
        text = Text()
        text.append(str(row["name"]), style="bold")  # literal: Text never parses markup
        text.append(f"\n{row['category']} · {fmt_ns(row['dur_ns'])} · grid "
                    f"{fmt_shape(row['grid'])} · block {fmt_shape(row['block'])} · regs "
                    f"{fmt_count(row['registers'])} · op {row['op_name'] or NA} · FLOPs "
                    f"{fmt_rate(row['flops'])} · DRAM {fmt_rate(row['dram_bytes'], 'B')}")
        details.update(text)
