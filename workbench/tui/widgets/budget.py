"""The speed-of-light budget in the Roofline tab: the measured step against the step with
every kernel at its roof, and the lines ranked by microseconds lost, each with the layer this
run can add (or what would address it). Rendered to the widget's width; names stay literal."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from workbench.export.fmt import NA, fmt_ns

REMEDY_SHORT = {
    "precision": "TF32", "memory_layout": "static KV / fused proj.",
    "attention_kernel": "better attention kernel", "cuda_graphs": "CUDA graphs",
    "compile_fusion": "compile fusion", "gemv": "tuned GEMV", "fp8_weights": "FP8 weights",
    "fp8_kv": "FP8 KV cache", "paged_kv": "paged KV", "speculative": "speculative decoding",
    "grouped_experts": "grouped experts",
}


def _pct(share: Any) -> str:
    return NA if share is None else f"{share * 100:.1f}%"


class BudgetView(Widget):
    """``set_budget(budget)`` with an analyzers.sol_budget.SolBudget, or None."""

    DEFAULT_CSS = "BudgetView { height: auto; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._budget: Any = None
        self._reason = "Loading the speed-of-light budget…"

    def set_budget(self, budget: Any, reason: str | None = None) -> None:
        self._budget = budget
        self._reason = reason or ("No speed-of-light budget for this run: it needs a step "
                                  "timeline (a torch or nsys trace) and the device's ceilings.")
        self.refresh(layout=True)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        b = self._budget
        if b is None:  # the reason, wrapped
            return max(1, -(-len(self._reason) // max(width, 1)))
        return 3 + len(b.lines)

    def render(self) -> Text:
        b, width = self._budget, max(self.content_size.width, 20)
        if b is None:
            return Text(self._reason, style="dim")
        rows: list[Text] = []
        head = Text("Speed of light: ", style="bold")
        head.append(f"{fmt_ns(b.step_ns)} measured → {fmt_ns(b.sol_ns)} with every kernel at "
                    f"its roof ({b.steps} step{'s' if b.steps != 1 else ''}, "
                    f"{b.ceilings_source} ceilings)")
        rows.append(head)
        rows.append(Text(f"busy {fmt_ns(b.kernel_ns)} · idle gaps {fmt_ns(b.idle_ns)} · host "
                         f"{fmt_ns(b.host_ns)} · FLOPs/bytes known for {_pct(b.coverage)} of "
                         "kernel time", style="dim"))
        fix_width = 24
        name_width = max(width - 2 - 1 - 9 - 1 - 7 - 2 - 2 - fix_width, 10)
        rows.append(Text(f"{'#':>2} {'lost/step':>9} {'of step':>7}  {'where':<{name_width}}  "
                         f"{'fix (layer)':>{fix_width}}", style="dim"))
        for i, line in enumerate(b.lines, 1):
            lost = NA if line.lost_ns is None else fmt_ns(line.lost_ns)
            name = line.name
            if line.kind == "unknown":
                name = f"{fmt_ns(line.measured_ns)} in kernels of unknown FLOPs/bytes"
            name = name if len(name) <= name_width else name[: name_width - 1] + "…"
            fix = line.layer or REMEDY_SHORT.get(line.remedy or "", "")
            fix = fix if len(fix) <= fix_width else fix[: fix_width - 1] + "…"
            style = "bold" if i == 1 and line.lost_ns else ""
            row = Text(f"{i:>2} {lost:>9} {_pct(line.share_of_step):>7}  ", style=style)
            row.append(f"{name:<{name_width}}", style=style)  # literal: never markup
            row.append(f"  {fix:>{fix_width}}", style="green" if line.layer else "dim")
            rows.append(row)
        for row in rows:  # one terminal line each: cut, never wrapped
            row.truncate(width, overflow="ellipsis")
        return Text("\n").join(rows)
