"""Sweep and scaling tables with a plain-text plot (terminal and Markdown code block alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.export.escape import md_text
from workbench.export.fmt import NA, fmt_num, md_table

PLOT_HEIGHT = 10
COLUMN = 9  # characters per x position


def text_plot(labels: Sequence[str], values: Sequence[float | None], title: str,
              knee: int | None = None) -> list[str]:
    """A scatter of ``values`` over ``labels`` in plain text: '*' per point, 'K' at the knee."""
    known = [v for v in values if v is not None]
    if not known:
        return [f"{title}: n/a (no values)"]
    top, bottom = max(known), min(0.0, min(known))
    span = (top - bottom) or 1.0
    rows = [[" "] * (COLUMN * len(values)) for _ in range(PLOT_HEIGHT)]
    for index, value in enumerate(values):
        if value is None:
            continue
        level = round((value - bottom) / span * (PLOT_HEIGHT - 1))
        rows[PLOT_HEIGHT - 1 - level][index * COLUMN + COLUMN // 2] = \
            "K" if index == knee else "*"
    axis_width = max(len(fmt_num(top, 4)), len(fmt_num(bottom, 4)))
    out = [title]
    for row_index, row in enumerate(rows):
        label = fmt_num(top, 4) if row_index == 0 else \
            fmt_num(bottom, 4) if row_index == PLOT_HEIGHT - 1 else ""
        out.append(f"{label:>{axis_width}} |{''.join(row).rstrip()}")
    out.append(" " * axis_width + " +" + "-" * (COLUMN * len(values)))
    out.append(" " * (axis_width + 2) + "".join(f"{str(lab)[:COLUMN - 1]:^{COLUMN}}"
                                                  for lab in labels).rstrip())
    if knee is not None:
        out.append(" " * (axis_width + 2) + f"K = knee at {labels[knee]}")
    return out


def knee_line(labels: Sequence[str], knee: int | None) -> str:
    if knee is None:
        return "Knee: none (the throughput does not bend: still rising, flat, or too few points)."
    return f"Knee: {labels[knee]} (beyond it throughput grows less than the parameter)."


def point_label(point: dict[str, Any]) -> str:
    return ",".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in point.items())


def render_sweep(title: str, axes: list[str], rows: list[dict[str, Any]],
                 series: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """``rows``: one per point (point, status, latency_ms, tokens_per_s, run_id, knee flag);
    ``series``: plots to draw (title, labels, throughput, latency, knee)."""
    out = [f"# {md_text(title)}", ""]
    out.append(md_text(", ".join(f"{k}: {v}" for k, v in meta.items() if v not in (None, ""))))
    out += ["", md_table([*axes, "status", "latency median", "tokens/s", "speedup", "knee",
                          "session"], [
        [*[point_label({a: r["point"][a]}).split("=", 1)[1] for a in axes], r["status"],
         fmt_num(r["latency_ms"], 4, "ms"), fmt_num(r["tokens_per_s"], 4),
         fmt_num(r["speedup"], 3, "x") if r["speedup"] is not None else NA,
         "◀ knee" if r.get("knee") else "", r["run_id"]] for r in rows],
        align="l" * len(axes) + "lrrrll")]
    for s in series:
        out += ["", f"## {s['title']}", "", "```",
                *text_plot(s["labels"], s["throughput"], "throughput (tokens/s)", s["knee"]),
                "",
                *text_plot(s["labels"], s["latency"], "latency median (ms)", s["knee"]),
                "```", "", knee_line(s["labels"], s["knee"])]
    return "\n".join(out) + "\n"


def render_scale(title: str, rows: list[dict[str, Any]], meta: dict[str, Any],
                 knee: int | None) -> str:
    out = [f"# {md_text(title)}", "",
           md_text(", ".join(f"{k}: {v}" for k, v in meta.items() if v not in (None, ""))),
           "", md_table(["GPUs", "status", "latency median", "tokens/s", "speedup",
                         "efficiency per GPU", "session"], [
               [r["gpus"], r["status"], fmt_num(r["latency_ms"], 4, "ms"),
                fmt_num(r["tokens_per_s"], 4), fmt_num(r["speedup"], 3, "x")
                if r["speedup"] is not None else NA,
                fmt_num(None if r["efficiency"] is None else r["efficiency"] * 100, 3, "%"),
                r["run_id"]] for r in rows], align="rlrrrrl")]
    labels = [str(r["gpus"]) for r in rows]
    out += ["", "```",
            *text_plot(labels, [r["tokens_per_s"] for r in rows], "throughput (tokens/s)", knee),
            "",
            *text_plot(labels, [None if r["efficiency"] is None else r["efficiency"] * 100
                                for r in rows], "efficiency per GPU (%)"),
            "```"]
    return "\n".join(out) + "\n"
