"""Markdown for regions: GPU time by NVTX / annotation range (analyzers.regions) — the range
tree, and each detected loop's iterations."""

from __future__ import annotations

from typing import Any

from workbench.export.escape import md_text
from workbench.export.fmt import NA, fmt_ns, fmt_pct, md_table, shorten

TREE_ROWS = 25
TREE_DEPTH = 4
ITERATION_ROWS = 12


def regions_section(analysis: Any) -> list[str]:
    """The '## Regions' section; [] when the artifact has no ranges."""
    r = getattr(analysis, "regions", None)
    if r is None:
        return []
    how = ("each kernel goes to the innermost range open on the thread that launched it"
           if r.attribution == "launch" else
           "each kernel goes to the innermost GPU-timeline range holding its start")
    share = r.attributed_gpu_ns / r.total_gpu_ns if r.total_gpu_ns else None
    out = ["## Regions (NVTX / annotations)", "",
           f"{r.range_count:,} ranges ({md_text(r.source)}); {fmt_ns(r.attributed_gpu_ns)} of "
           f"{fmt_ns(r.total_gpu_ns)} GPU time ({fmt_pct(share)}) ran inside them — {how}."]
    for it in r.iterations:
        out += ["", *_iteration_lines(it)]
    tree = r.tree[r.tree["depth"] < TREE_DEPTH]
    shown = tree[tree["gpu_ns"] > 0] if (tree["gpu_ns"] > 0).any() else tree
    if len(shown):
        rows = [["\u00a0\u00a0" * int(t.depth) + shorten(str(t.name), 70), int(t.count),
                 fmt_ns(t.wall_ns), fmt_ns(t.gpu_ns), fmt_ns(t.self_gpu_ns), int(t.kernels),
                 fmt_pct(t.share)] for t in shown.head(TREE_ROWS).itertuples()]
        out += ["", f"Range tree (GPU time with descendants; top {len(rows)} of {len(tree)} "
                "nodes, numbered names such as ProfilerStep#N as one node):", "",
                md_table(["range", "count", "wall", "GPU", "GPU (own)", "kernels", "share"],
                         rows, align="lrrrrrr")]
    return out


def _iteration_lines(it: Any) -> list[str]:
    cv = NA if it.gpu_cv is None else f"{it.gpu_cv * 100:.1f}%"
    out = [f"**{md_text(it.name)}**: {it.count} iterations, GPU time median {fmt_ns(it.gpu_median_ns)} "
           f"(spread {cv} of the mean), wall median {fmt_ns(it.wall_median_ns)}; "
           f"{fmt_pct(it.coverage)} of the ranged GPU time."]
    frame = it.iterations
    span = "gpu_span_ns" in frame.columns
    rows = [[int(t.index), shorten(str(t.name), 50), fmt_ns(t.wall_ns), fmt_ns(t.gpu_ns),
             *([fmt_ns(t.gpu_span_ns)] if span else []), int(t.kernels)]
            for t in frame.head(ITERATION_ROWS).itertuples()]
    headers = ["#", "range", "wall (CPU)", "GPU time", *(["GPU span"] if span else []), "kernels"]
    out += ["", md_table(headers, rows, align="rl" + "r" * (len(headers) - 2))]
    if len(frame) > ITERATION_ROWS:
        out += ["", f"_{len(frame) - ITERATION_ROWS} more iterations in the JSON export_"]
    out += [f"_{md_text(n)}_" for n in it.notes]
    return out
