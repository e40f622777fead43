"""A roofline drawn with text cells: log-log axes that cover every point and the ridge, the
roofs, one mark per kernel sized by its share of GPU time, and a legend.

Points come from the analysis as a DataFrame, one row per kernel (name, dur_ns = its total
time, launches, flops_per_s, bytes_per_s, intensity, bound, pct_of_roof, cost_source); roofs as
``workbench.api.views.Roof`` (compute FLOP/s or memory bytes/s). A kernel with 0 FLOPs (a copy, a fill)
has no place on a log axis and one without FLOPs or bytes none at all: both are counted and
the panel says so. ``[`` / ``]`` (or left / right) walk the points from the heaviest kernel
down; the selection is posted up as ``PointSelected`` so the panel can show its metrics.
The panel also holds the step's speed-of-light budget (widgets.budget).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from workbench.api.views import Roof
from workbench.export.fmt import NA, fmt_float, fmt_ns, fmt_rate
from workbench.tui.widgets.budget import BudgetView

Y_LABEL_WIDTH = 7
# Marks by share of GPU time (the terminal's stand-in for a point's size).
MARKS = ((0.10, "●"), (0.01, "•"), (0.0, "·"))


def _si(value: float) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.4g}{prefix}"
    return f"{value:.4g}"


def _roof_labels(compute: list[Roof]) -> list[tuple[float, str]]:
    """Compute roofs with the same peak share one label ("bf16/fp16"), highest first."""
    names: dict[float, list[str]] = {}
    for roof in compute:
        names.setdefault(roof.value, []).append(roof.name)
    return [(value, "/".join(names[value])) for value in sorted(names, reverse=True)]


class RooflinePlot(Widget, can_focus=True):
    BINDINGS = [
        Binding("right,right_square_bracket", "select(1)", "Next point", id="roofline.next"),
        Binding("left,left_square_bracket", "select(-1)", "Prev point", id="roofline.prev"),
    ]
    COMPONENT_CLASSES = {"roofline--roof", "roofline--point", "roofline--selected",
                         "roofline--axis"}

    selected: reactive[int] = reactive(0, always_update=True)

    class PointSelected(Message):
        def __init__(self, point: dict | None) -> None:
            super().__init__()
            self.point = point

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._points = pd.DataFrame()
        self._roofs: list[Roof] = []
        self.zero_flops = 0  # kernels left out: 0 FLOPs (copies, fills)
        self.flops_only = 0  # FLOPs known, bytes not: no intensity
        self.unknown = 0  # neither known

    def set_data(self, points: pd.DataFrame | None, roofs: list[Roof]) -> None:
        frame = pd.DataFrame() if points is None else points
        self.zero_flops = self.flops_only = self.unknown = 0
        if len(frame):
            intensity = pd.to_numeric(frame.get("intensity"), errors="coerce")
            fps = pd.to_numeric(frame.get("flops_per_s"), errors="coerce")
            drawable = (intensity > 0) & (fps > 0)
            zero = ~drawable & ((fps == 0) | (intensity == 0))
            self.zero_flops = int(zero.sum())
            self.flops_only = int((~drawable & ~zero & (fps > 0) & intensity.isna()).sum())
            self.unknown = int(len(frame) - drawable.sum() - self.zero_flops - self.flops_only)
            total = float(pd.to_numeric(frame["dur_ns"], errors="coerce").sum()) or 1.0
            frame = frame.assign(
                time_share=pd.to_numeric(frame["dur_ns"], errors="coerce") / total)[drawable]
            frame = frame.sort_values("dur_ns", ascending=False, na_position="last")
        self._points = frame.reset_index(drop=True)
        self._roofs = list(roofs)
        self.selected = 0
        self.refresh()

    @property
    def point_count(self) -> int:
        return len(self._points)

    def action_select(self, delta: int) -> None:
        if len(self._points):
            self.selected = (self.selected + delta) % len(self._points)

    def watch_selected(self, index: int) -> None:
        point = self._points.iloc[index].to_dict() if index < len(self._points) else None
        self.post_message(self.PointSelected(point))
        self.refresh()

    # ---- geometry ------------------------------------------------------------------------
    def _ranges(self) -> tuple[float, float, float, float]:
        """Decades covering every point, 0.1 FLOP/B (decode GEMVs sit near 1, elementwise
        kernels below it), a decade past the ridge, the highest roof and the memory roof where
        the x axis starts."""
        xs = list(np.log10(self._points["intensity"].astype(float))) if len(self._points) else []
        ys = list(np.log10(self._points["flops_per_s"].astype(float))) if len(self._points) else []
        compute = [r.value for r in self._roofs if r.kind == "compute"]
        memory = [r.value for r in self._roofs if r.kind == "memory"]
        ridge = math.log10(max(compute) / max(memory)) if compute and memory else None
        x0 = math.floor(min(xs + [-1.0]))
        x1 = math.ceil(max(xs + ([ridge + 1] if ridge is not None else []) + [x0 + 3.0]))
        if compute:
            ys.append(math.log10(max(compute)))
        if memory:
            ys.append(math.log10(max(memory)) + x0)  # the memory roof at the left edge
        if not ys:
            return -1.0, 3.0, 9.0, 15.0
        y1 = math.ceil(max(ys) + 0.3)
        y0 = min(math.floor(min(ys)), y1 - 3)
        return float(x0), float(x1), float(y0), float(y1)

    def _legend(self) -> str:
        memory = [r for r in self._roofs if r.kind == "memory"]
        parts = ["●≥10% •≥1% ·<1% of time", "◆ selected"]
        if memory:
            parts.append(f"╱ {memory[0].name} {_si(max(r.value for r in memory))}B/s")
        parts.append("─ compute roofs")
        return "  ".join(parts)

    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        if width < Y_LABEL_WIDTH + 10 or height < 6:
            return Text("(too small for a roofline)")
        if not len(self._points) and not self._roofs:
            return Text("No roofline data for this run: points need FLOPs and bytes "
                        "(ncu counters, or the torch profiler with FLOPs).")
        plot_w, plot_h = width - Y_LABEL_WIDTH - 1, height - 3  # axis, ticks, legend
        x0, x1, y0, y1 = self._ranges()
        grid: list[list[tuple[str, Style | None]]] = [[(" ", None)] * plot_w for _ in range(plot_h)]

        def row_of(log_y: float) -> int | None:
            r = plot_h - 1 - int((log_y - y0) / (y1 - y0) * plot_h)
            return r if 0 <= r < plot_h else None

        def col_of(log_x: float) -> int | None:
            c = int((log_x - x0) / (x1 - x0) * plot_w)
            return c if 0 <= c < plot_w else None

        roof_style = self.get_component_rich_style("roofline--roof")
        compute = [r for r in self._roofs if r.kind == "compute"]
        memory = [r for r in self._roofs if r.kind == "memory"]
        top_bw = max((r.value for r in memory), default=math.inf)
        top_peak = max((r.value for r in compute), default=math.inf)
        for col in range(plot_w):
            intensity = 10 ** (x0 + (col + 0.5) / plot_w * (x1 - x0))
            lines = [(min(r.value, top_bw * intensity), r.value <= top_bw * intensity)
                     for r in compute]
            lines += [(min(r.value * intensity, top_peak), r.value * intensity >= top_peak)
                      for r in memory]
            for value, flat in lines:
                row = row_of(math.log10(value)) if math.isfinite(value) and value > 0 else None
                if row is not None:
                    grid[row][col] = ("─" if flat else "╱", roof_style)
        labelled: set[int] = set()
        for value, names in _roof_labels(compute):
            row = row_of(math.log10(value))
            label = f" {names} {_si(value)}FLOP/s"
            # One label per row (the highest roof wins): overlapping labels would be unreadable.
            if row is not None and row > 0 and row - 1 not in labelled and len(label) < plot_w:
                labelled.add(row - 1)
                for i, ch in enumerate(label):
                    grid[row - 1][plot_w - len(label) + i] = (ch, roof_style)

        point_style = self.get_component_rich_style("roofline--point")
        selected_style = self.get_component_rich_style("roofline--selected")
        marks = []
        for index, (x, y, share) in enumerate(zip(
                self._points["intensity"], self._points["flops_per_s"],
                self._points["time_share"], strict=True)):
            at_col, at_row = col_of(math.log10(float(x))), row_of(math.log10(float(y)))
            if at_col is not None and at_row is not None:
                glyph = next(g for floor, g in MARKS if float(share) >= floor)
                marks.append((index == self.selected, -float(share), at_row, at_col, glyph))
        # Heavier kernels drawn last (on top of lighter ones), the selection last of all.
        for is_selected, _, row, col, glyph in sorted(marks, key=lambda m: (m[0], -m[1])):
            grid[row][col] = ("◆", selected_style) if is_selected else (glyph, point_style)

        axis_style = self.get_component_rich_style("roofline--axis")
        text = Text(no_wrap=True, overflow="crop")
        label_rows = {row_of(float(d)): _si(10.0 ** d) for d in range(int(y0), int(y1) + 1)}
        label_rows.setdefault(0, "FLOP/s")
        for r, cells in enumerate(grid):
            text.append(label_rows.get(r, "").rjust(Y_LABEL_WIDTH - 1)[: Y_LABEL_WIDTH - 1] + " ",
                        axis_style)
            text.append("│", axis_style)
            for ch, style in cells:
                text.append(ch, style or "")
            text.append("\n")
        text.append(" " * Y_LABEL_WIDTH + "└" + "─" * plot_w + "\n", axis_style)
        ticks = [" "] * plot_w
        for d in range(int(x0), int(x1) + 1):
            tick_col = col_of(float(d))
            label = f"{10.0 ** d:g}"
            if tick_col is not None and tick_col + len(label) <= plot_w and all(
                    t == " " for t in ticks[max(tick_col - 1, 0): tick_col + len(label) + 1]):
                ticks[tick_col: tick_col + len(label)] = list(label)
        axis = "".join(ticks)
        unit = " FLOP/byte"
        if len(axis.rstrip()) + len(unit) <= plot_w:
            axis = axis[: plot_w - len(unit)] + unit
        text.append(" " * (Y_LABEL_WIDTH + 1) + axis + "\n", axis_style)
        text.append((" " * (Y_LABEL_WIDTH + 1) + self._legend())[:width], axis_style)
        return text


class RooflinePanel(Vertical):
    """The Roofline tab: the plot, the selected kernel's metrics, the speed-of-light budget."""

    def compose(self) -> ComposeResult:
        yield RooflinePlot(id="roofline-plot")
        yield Static(Text("Loading roofline…"), id="roofline-details")
        with VerticalScroll(id="budget-scroll"):
            yield BudgetView(id="budget")

    def set_data(self, points: pd.DataFrame | None, roofs: list[Roof],
                 budget: Any = None) -> None:
        plot = self.query_one(RooflinePlot)
        plot.set_data(points, roofs)
        self.query_one(BudgetView).set_budget(budget)
        if not plot.point_count:
            roof_names = ", ".join(f"{r.name} {_si(r.value)}" for r in roofs) or "none"
            self.query_one("#roofline-details", Static).update(Text(
                f"No kernel points for this run (roofs: {roof_names}). "
                + (self._left_out(plot) or "It holds no kernels.")))

    @staticmethod
    def _left_out(plot: RooflinePlot) -> str:
        """Why kernels are not drawn, in words."""
        parts = []
        if plot.flops_only:
            parts.append(f"{plot.flops_only} kernel(s) have FLOPs but no DRAM bytes (torch's "
                         "with_flops counts FLOPs only; the operation inventory or ncu gives "
                         "bytes): no intensity to place them at")
        if plot.unknown:
            parts.append(f"{plot.unknown} kernel(s) have neither FLOPs nor bytes in this "
                         "artifact")
        if plot.zero_flops:
            parts.append(f"{plot.zero_flops} kernel(s) with 0 FLOPs (copies, fills) are not "
                         "drawn: a log axis has no zero")
        return "; ".join(parts) + ("." if parts else "")

    def on_roofline_plot_point_selected(self, event: RooflinePlot.PointSelected) -> None:
        event.stop()
        point = event.point
        if point is None:
            return
        plot = self.query_one(RooflinePlot)
        # The name on a line of its own, cut with "…" (the Kernels tab shows it in full): a
        # long one must not push the point's numbers out of the box.
        details = self.query_one("#roofline-details", Static)
        width = details.content_region.width or self.size.width
        text = Text()
        text.append(f"[{plot.selected + 1}/{plot.point_count}] ", style="dim")
        name = str(point.get("name", NA))
        room = width - len(text) if width else len(name)
        if len(name) > room > 1:
            name = name[:room - 1] + "…"
        text.append(name, style="bold")  # literal, never markup
        launches = point.get("launches")
        text.append(
            f"\n{fmt_ns(point.get('dur_ns'))}"
            + (f" in {int(launches):,} launch{'es' if launches != 1 else ''}"
               if launches is not None and launches == launches else "")
            + f" · {fmt_rate(point.get('flops_per_s'), 'FLOP/s')} · "
            f"{fmt_rate(point.get('bytes_per_s'), 'B/s')} · intensity "
            f"{fmt_float(point.get('intensity'), 2)} FLOP/B · {point.get('bound', NA)}-bound · "
            f"{fmt_float(point.get('pct_of_roof'), 1)}% of roof · from "
            f"{point.get('cost_source', point.get('source', NA))}   ([ ] or ← →: other points)")
        left_out = self._left_out(plot)
        if left_out:
            text.append("\n" + left_out, style="dim")
        details.update(text)
