"""Markdown section: HTA's numbers next to ours (analyzers.hta_compare.HtaComparison)."""

from __future__ import annotations

from typing import Any

from workbench.export.escape import md_text
from workbench.export.fmt import fmt_exact, md_table, shorten

_EXPLAINED = {"rounding": "ours rounded inward to whole us",
              "last step dropped": "ours without the last ProfilerStep, rounded"}


def _val(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    return fmt_exact(value) + ("%" if unit == "%" else "")


def render_hta_section(cmp: Any, top: int = 10) -> str:
    took = f", {cmp.hta_seconds:.1f} s" if cmp.hta_seconds is not None else ""
    pandas = f", pandas {md_text(cmp.pandas_version)}" if getattr(cmp, "pandas_version", None) else ""
    out = [f"## HTA {md_text(cmp.hta_version or '')} next to ours{took}{pandas}".replace("  ", " "),
           ""]
    if not cmp.rows:  # HTA produced nothing: say so and why, nothing else
        out += [f"- {md_text(n)}" for n in cmp.notes]
        out += [f"- HTA {md_text(key)}: failed ({md_text(err)})" for key, err in cmp.errors.items()
                if not any(err in n for n in cmp.notes)]
        return "\n".join(out) + "\n"
    rows = []
    for r in cmp.rows:
        if r.agree is None:
            verdict = "n/a"
        elif r.agree:
            verdict = "agree"
        else:
            by = (f"{r.delta_pct:+.3g}%" if r.delta_pct is not None else "")
            verdict = f"differ by {fmt_exact(r.delta)} {r.unit} ({by})" + (f": {r.why}" if r.why else "")
        rows.append([r.metric, r.unit, _val(r.ours, r.unit), _val(r.hta, r.unit), verdict])
    out.append(md_table(["metric", "unit", "ours", "HTA", "verdict"], rows, align="llrrl"))
    off = cmp.kernel_disagreements
    if off is not None and len(off):
        out += ["", f"Kernels whose totals differ by more than 0.1% ({len(off)}):", ""]
        out.append(md_table(["kernel", "ours us", "HTA us", "delta %", "HTA's figure is"], [
            [shorten(str(r.name), 70), fmt_exact(r.ours_us), fmt_exact(r.hta_us),
             "n/a" if r.delta_pct != r.delta_pct else f"{r.delta_pct:+.2f}%",
             _EXPLAINED.get(str(getattr(r, "explained_by", "")), "unexplained")]
            for r in off.head(top).itertuples()], align="lrrrl"))
    if cmp.idle_by_category is not None and len(cmp.idle_by_category):
        out += ["", "HTA idle-time breakdown (all streams):", ""]
        out.append(md_table(["category", "idle us", "share"], [
            [r.idle_category, fmt_exact(r.idle_us),
             "n/a" if r.share != r.share else f"{r.share * 100:.1f}%"]
            for r in cmp.idle_by_category.itertuples()], align="lrr"))
    if cmp.launch_summary:
        out += ["", "HTA CUDA kernel launch statistics:", ""]
        out.append(md_table(["", ""], [[k.replace("_", " "), fmt_exact(v)]
                                       for k, v in cmp.launch_summary.items()], align="lr"))
    if cmp.overlap is not None and len(cmp.overlap):
        out += ["", "HTA communication/computation overlap:", ""]
        out.append(md_table(list(map(str, cmp.overlap.columns)),
                            [[fmt_exact(v) for v in row] for row in cmp.overlap.itertuples(index=False)]))
    for key, err in cmp.errors.items():
        out.append(f"- HTA {md_text(key)}: failed ({md_text(err)})")
    out += [f"- {md_text(n)}" for n in cmp.notes]
    return "\n".join(out) + "\n"
