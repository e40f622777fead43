"""The Diff tab: the verdict, what was compared (speedup with its confidence interval, both
runs' CVs, the noise floor), comparability, warnings, and the category and kernel deltas as
tables (cells are Text: kernel names render literally)."""

from __future__ import annotations

import pandas as pd
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from workbench.api.views import DiffView
from workbench.export.fmt import NA, fmt_count, fmt_float, fmt_ns, fmt_pct, is_missing

MAX_KERNEL_ROWS = 200  # the largest deltas; the full table is in the CSV/JSON export


def _cell(column: str, value: object) -> Text:
    if is_missing(value):
        return Text(NA, justify="right")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if column.endswith("_ns"):
            text = fmt_ns(value)
            if value > 0 and "delta" in column:
                text = "+" + text
            return Text(text, justify="right")
        if column.endswith("_pct"):  # already in percent (analyzers.diff)
            return Text(f"{value:+.1f}%", justify="right")
        if "share" in column:  # a fraction
            return Text(fmt_pct(value), justify="right")
        if column.endswith("_count"):
            return Text(fmt_count(value), justify="right")
        return Text(fmt_float(value, 3), justify="right")
    return Text(str(value))


NO_KERNELS = ("n/a: no GPU kernels in one or both runs (timer runs and CPU runs have none; "
              "profile with torch or ncu on a GPU)")
NOT_COMPUTED = "not computed: the runs are not comparable (see the verdict; --force in the CLI)"


def fill_table(table: DataTable, frame: pd.DataFrame | None, limit: int | None = None) -> bool:
    """The frame's rows (the first ``limit``); False, and the table hidden, when it has none."""
    table.clear(columns=True)
    table.display = frame is not None and len(frame) > 0
    if frame is None or not len(frame):
        return False
    columns = [str(c) for c in frame.columns]
    for column in columns:
        table.add_column(column, key=column)
    rows = frame.head(limit) if limit else frame
    for values in rows.itertuples(index=False, name=None):
        table.add_row(*(_cell(c, v) for c, v in zip(columns, values, strict=True)))
    return True


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value:.1f}%"


def verdict_text(diff: DiffView, baseline_id: str, candidate_id: str) -> Text:
    """The verdict, what was compared, its CI, both CVs, the noise floor, comparability."""
    text = Text()
    text.append("Verdict: ", style="bold")
    text.append(diff.verdict, style="bold reverse")
    if diff.verdict_reason and diff.verdict in ("not comparable", "inconclusive", "identical"):
        text.append(f"  {diff.verdict_reason}")
    speedup = "n/a" if diff.speedup is None else f"{diff.speedup:.3f}×"
    ci = ("no CI" if diff.ci_low is None or diff.ci_high is None
          else f"95% CI {diff.ci_low:.3f}× – {diff.ci_high:.3f}×")
    figure = diff.figure if diff.figure != "none" else "no common figure"
    values = ""
    if diff.baseline_ms is not None and diff.candidate_ms is not None:
        values = f": {diff.baseline_ms:,.4g} ms → {diff.candidate_ms:,.4g} ms"
    text.append(f"\nspeedup {speedup} by {figure}{values}  ({ci})")
    floor = (f"noise floor {_pct(diff.noise_floor_pct)}" if diff.noise_floor_pct is not None
             else "no noise floor (no repeats)")
    text.append(f"\nlatency CV {_pct(diff.baseline_cv_pct)} → {_pct(diff.candidate_cv_pct)}; "
                f"{floor}")
    if diff.comparability:
        text.append("\ncomparability: ", style="bold")
        text.append(diff.comparability)
    text.append(f"\nbaseline {baseline_id}  →  candidate {candidate_id}"
                + ("  (kernel times per profiled step)" if diff.per_step else ""))
    for warning in diff.warnings:
        text.append("\n⚠ ", style="bold")
        text.append(warning)
    return text


class DiffPanel(VerticalScroll):
    diff: DiffView | None = None  # the diff shown (tests compare it with the CLI's)

    def compose(self) -> ComposeResult:
        yield Static(Text("No baseline yet: press b to pick a session to compare against."),
                     id="diff-verdict")
        yield Static(Text("Category deltas", style="bold"), classes="diff-title")
        yield DataTable(id="diff-categories", cursor_type="row", zebra_stripes=False)
        yield Static(Text(""), id="diff-categories-empty", classes="diff-empty")
        yield Static(Text(f"Kernel deltas (largest {MAX_KERNEL_ROWS})", style="bold"),
                     classes="diff-title")
        yield DataTable(id="diff-kernels", cursor_type="row")
        yield Static(Text(""), id="diff-kernels-empty", classes="diff-empty")

    def on_mount(self) -> None:
        self._show_tables(False)

    def _show_tables(self, shown: bool) -> None:
        for widget in self.query(".diff-title, DataTable, .diff-empty"):
            widget.display = shown

    def show_pending(self, message: str) -> None:
        self.query_one("#diff-verdict", Static).update(Text(message))
        self._show_tables(False)

    def set_diff(self, diff: DiffView, baseline_id: str, candidate_id: str) -> None:
        self.diff = diff
        for title in self.query(".diff-title"):
            title.display = True
        self.query_one("#diff-verdict", Static).update(
            verdict_text(diff, baseline_id, candidate_id))
        # Why a table is empty, as wrapped text (a one-cell table cut it at 80 columns).
        empty = Text(NOT_COMPUTED if diff.verdict == "not comparable" else NO_KERNELS)
        kernels = diff.kernel_deltas
        if isinstance(kernels, pd.DataFrame) and "delta_ns" in kernels.columns:
            kernels = kernels.reindex(kernels["delta_ns"].abs().sort_values(ascending=False).index)
        for name, frame, limit in (("categories", diff.category_deltas, None),
                                   ("kernels", kernels, MAX_KERNEL_ROWS)):
            filled = fill_table(self.query_one(f"#diff-{name}", DataTable), frame, limit)
            note = self.query_one(f"#diff-{name}-empty", Static)
            note.update(Text("") if filled else empty)
            note.display = not filled
