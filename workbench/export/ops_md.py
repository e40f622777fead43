"""The "Top CPU ops by GPU time" section of a report, or why there is none: under CUDA graphs
and torch.compile most kernels have no parent aten op (analyzers.breakdown.unattributed_reason),
and a table saying "(no parent op) 100%" would only mislead."""

from __future__ import annotations

from typing import Any

from analyzers.breakdown import unattributed_reason
from workbench.export.escape import md_text
from workbench.export.fmt import fmt_ns, fmt_pct, md_table, shorten

NO_PARENT = "(no parent op)"


def cpu_ops_by_gpu_time_section(a: Any) -> list[str]:
    if a.ops is None or not len(a.ops):
        return []
    out = ["", "## Top CPU ops by GPU time", ""]
    reason = unattributed_reason(a.kernels)
    if reason:
        return out + [f"_{md_text(reason)}_"]
    ops = a.ops.head(10)
    out.append(md_table(["op", "kernels", "GPU time", "share"], [
        [shorten(str(r.op_name)) if isinstance(r.op_name, str) else NO_PARENT,
         r.count, fmt_ns(r.total_ns), fmt_pct(r.share)] for r in ops.itertuples()]))
    return out
