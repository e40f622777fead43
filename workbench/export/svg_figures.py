"""The roofline and the speed-of-light budget as SVG files beside a Markdown report.

Written by hand (no plotting library, no browser): log-log axes, the device's ceilings as
lines (the memory roof's slope, one flat roof per distinct peak), one point per kernel sized
by its time and coloured by category, a legend; the budget as bars of microseconds lost per
step. Kernel names are XML-escaped (they come from the artifact).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from analyzers.sol_budget import REMEDY_TEXT
from workbench.export.fmt import fmt_ns, fmt_rate

FIGURES = ("roofline", "budget")
COLOURS = {"gemm": "#1f77b4", "attention": "#d62728", "elementwise": "#2ca02c",
           "norm": "#9467bd", "reduction": "#8c564b", "moe_dispatch": "#e377c2",
           "memcpy": "#7f7f7f", "memset": "#bcbd22", "communication": "#17becf",
           "other": "#ff7f0e"}
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {FONT}'
            f'{" " + extra if extra else ""}>{escape(text)}</text>')


def roofline_svg(analysis: Any, width: int = 760, height: int = 480) -> str | None:
    """The per-kernel roofline, or None without ceilings or kernel rows."""
    kernels, c = getattr(analysis, "roofline", None), getattr(analysis, "ceilings", None)
    if kernels is None or c is None or not len(kernels):
        return None
    peaks = sorted({float(v) for v in (c.peak_flops or {}).values() if v}, reverse=True)
    bw = _finite(c.dram_bw)
    points, zero, unknown = [], 0, 0
    total = float(kernels["total_ns"].sum()) or 1.0
    for row in kernels.itertuples():
        ai, fps = _finite(row.arithmetic_intensity), _finite(row.achieved_flops_per_s)
        if ai is None or fps is None:
            unknown += 1
        elif ai <= 0 or fps <= 0:
            zero += 1
        else:
            points.append((ai, fps, float(row.total_ns) / total, row))
    xs = [p[0] for p in points] + ([peaks[0] / bw] if peaks and bw else [])
    ys = [p[1] for p in points] + peaks[:1]
    if not xs:
        xs, ys = [1.0], [1e12]
    x0 = math.floor(math.log10(min(min(xs), 0.1)))
    x1 = math.ceil(math.log10(max(xs) * 10))
    y1 = math.ceil(math.log10(max(ys) * 1.5))
    y_floor = min(ys + ([bw * 10.0 ** x0] if bw else []))
    y0 = min(math.floor(math.log10(y_floor)), y1 - 3)
    left, right, top, bottom = 78, 200, 30, 70
    pw, ph = width - left - right, height - top - bottom

    def px(ai: float) -> float:
        return left + (math.log10(ai) - x0) / (x1 - x0) * pw

    def py(fps: float) -> float:
        return top + ph - (math.log10(fps) - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">', '<rect width="100%" height="100%" fill="white"/>',
           _text(left, 18, f"Roofline — {c.device_name} ({c.source} ceilings)", 14,
                 extra='font-weight="bold"')]
    for d in range(x0, x1 + 1):  # grid and ticks, one per decade
        x = px(10.0 ** d)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#eee"/>')
        out.append(_text(x, top + ph + 16, f"{10.0 ** d:g}", 11, "middle"))
    for d in range(y0, y1 + 1):
        y = py(10.0 ** d)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(_text(left - 6, y + 4, fmt_rate(10.0 ** d, "").strip() or "1", 11, "end"))
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(_text(left + pw / 2, height - 30, "arithmetic intensity (FLOP / DRAM byte)", 12,
                     "middle"))
    out.append(_text(18, top + ph / 2, "achieved FLOP/s", 12, "middle",
                     f'transform="rotate(-90 18 {top + ph / 2:.0f})"'))
    out.append(f'<clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/>'
               "</clipPath>")
    names = {float(v): "/".join(k for k, val in c.peak_flops.items() if val and float(val) == v)
             for v in peaks}
    lo, hi = 10.0 ** x0, 10.0 ** x1
    for peak in peaks:  # each flat roof from its ridge; the slope up to the highest ridge
        start = peak / bw if bw else lo
        out.append(f'<line x1="{px(max(start, lo)):.1f}" y1="{py(peak):.1f}" x2="{px(hi):.1f}" '
                   f'y2="{py(peak):.1f}" stroke="#333" stroke-width="1.5" clip-path="url(#plot)"/>')
        out.append(_text(left + pw - 4, py(peak) - 4, f"{names[peak]} {fmt_rate(peak, 'FLOP/s')}", 10,
                         "end", 'fill="#333"'))
    if bw:
        ridge = peaks[0] / bw if peaks else hi
        out.append(f'<line x1="{px(lo):.1f}" y1="{py(bw * lo):.1f}" x2="{px(ridge):.1f}" '
                   f'y2="{py(bw * ridge):.1f}" stroke="#333" stroke-width="1.5" '
                   'stroke-dasharray="6 3" clip-path="url(#plot)"/>')
        out.append(_text(px(lo) + 6, py(bw * lo) - 8, f"DRAM {fmt_rate(bw, 'B/s')}", 10, "start",
                         'fill="#333"'))
    for ai, fps, share, row in sorted(points, key=lambda p: -p[2]):  # small ones on top
        colour = COLOURS.get(str(row.category), COLOURS["other"])
        radius = max(2.5, min(16.0, 16.0 * math.sqrt(share)))
        title = (f"{row.name}: {row.launches} launches, {fmt_ns(float(row.total_ns))}, "
                 f"{fmt_rate(fps, 'FLOP/s')}, {fmt_rate(float(row.achieved_bytes_per_s), 'B/s')}, "
                 f"{ai:.3g} FLOP/B, {row.bound}-bound")
        out.append(f'<circle cx="{px(ai):.1f}" cy="{py(fps):.1f}" r="{radius:.1f}" '
                   f'fill="{colour}" fill-opacity="0.6" stroke="{colour}" clip-path="url(#plot)">'
                   f"<title>{escape(title)}</title></circle>")
    # Legend: categories drawn, the size scale, the roofs.
    lx, ly = left + pw + 16, top + 8
    out.append(_text(lx, ly, "kernels by category", 11, extra='font-weight="bold"'))
    for category in sorted({str(p[3].category) for p in points}):
        ly += 18
        out.append(f'<circle cx="{lx + 6}" cy="{ly - 4}" r="5" fill="'
                   f'{COLOURS.get(category, COLOURS["other"])}" fill-opacity="0.6"/>')
        out.append(_text(lx + 16, ly, category, 11))
    ly += 28
    out.append(_text(lx, ly, "area ∝ share of GPU time", 11))
    for share, label in ((0.5, "50%"), (0.1, "10%"), (0.01, "1%")):
        ly += 26
        r = max(2.5, min(16.0, 16.0 * math.sqrt(share)))
        out.append(f'<circle cx="{lx + 16}" cy="{ly - 4}" r="{r:.1f}" fill="none" stroke="#555"/>')
        out.append(_text(lx + 38, ly, label, 11))
    ly += 28
    out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="#333" '
               'stroke-dasharray="6 3"/>')
    out.append(_text(lx + 28, ly, "memory roof", 11))
    ly += 18
    out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="#333"/>')
    out.append(_text(lx + 28, ly, "compute roofs", 11))
    left_out = []
    if zero:
        left_out.append(f"{zero} kernel(s) with 0 FLOPs (copies, fills) not drawn: a log axis "
                        "has no zero")
    if unknown:
        left_out.append(f"{unknown} kernel(s) without FLOPs or bytes not drawn")
    if left_out:
        out.append(_text(left, height - 10, "; ".join(left_out) + ".", 11, extra='fill="#555"'))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def budget_svg(analysis: Any, width: int = 760, rows: int = 12) -> str | None:
    """The budget: the measured and speed-of-light steps, then the lines by time lost."""
    b = getattr(analysis, "budget", None)
    if b is None or b.step_ns <= 0:
        return None
    lines = [ln for ln in b.lines if ln.lost_ns is not None and ln.lost_ns > 0][:rows]
    unknown = next((ln for ln in b.lines if ln.kind == "unknown"), None)
    left, right, bar = 250, 150, 18
    pw = width - left - right
    scale = pw / max(b.step_ns, 1)
    out = ["", '<rect width="100%" height="100%" fill="white"/>',
           _text(12, 20, f"Speed-of-light budget per step — {b.device_name or 'device n/a'} "
                 f"({b.ceilings_source} ceilings, {b.steps} step(s))", 14,
                 extra='font-weight="bold"')]
    y = 44
    # Measured step: kernels at roof | lost in kernels | idle | host | unknown.
    kernel_lost = sum(ln.lost_ns or 0 for ln in b.lines if ln.kind in ("kernel", "category"))
    at_roof = max(b.sol_ns - (unknown.measured_ns if unknown else 0), 0)
    parts = [("kernels at their roof", at_roof, "#2ca02c"),
             ("lost in kernels", kernel_lost, "#d62728"),
             ("idle gaps", b.idle_ns, "#ff7f0e"), ("host", b.host_ns or 0, "#9467bd"),
             ("unknown FLOPs/bytes", unknown.measured_ns if unknown else 0, "#bbbbbb")]
    for label, value in (("measured step", b.step_ns), ("at speed of light", b.sol_ns)):
        out.append(_text(left - 8, y + 13, f"{label} {fmt_ns(value)}", 12, "end"))
        x = float(left)
        segments = parts if label == "measured step" else [parts[0], parts[4]]
        for name, ns, colour in segments:
            if ns <= 0:
                continue
            w = ns * scale
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" '
                       f'fill="{colour}"><title>{escape(name)}: {fmt_ns(ns)}</title></rect>')
            x += w
        y += bar + 8
    lx = 12.0
    for name, _, colour in parts:  # legend of the segments
        out.append(f'<rect x="{lx:.0f}" y="{y + 2}" width="10" height="10" fill="{colour}"/>')
        out.append(_text(lx + 14, y + 11, name, 11))
        lx += 26 + 7 * len(name)
    y += 36
    out.append(_text(12, y, "time lost per step (measured - at roof), largest first", 12,
                     extra='font-weight="bold"'))
    y += 10
    biggest = max((ln.lost_ns or 0 for ln in lines), default=1) or 1
    for ln in lines:
        label = ln.name if len(ln.name) <= 34 else ln.name[:33] + "…"
        out.append(_text(left - 8, y + 13, label, 11, "end"))
        w = (ln.lost_ns or 0) / biggest * pw
        colour = {"idle": "#ff7f0e", "host": "#9467bd"}.get(ln.kind, "#d62728")
        out.append(f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar}" '
                   f'fill="{colour}"><title>{escape(ln.why)}</title></rect>')
        fix = ln.layer or REMEDY_TEXT.get(ln.remedy or "", "")
        out.append(_text(left + max(w, 1) + 6, y + 13,
                         f"{fmt_ns(ln.lost_ns or 0)}" + (f" · {fix}" if ln.layer else ""), 11))
        y += bar + 8
    if unknown:
        y += 14
        out.append(_text(12, y, f"{fmt_ns(unknown.measured_ns)} per step in kernels of unknown "
                         "FLOPs/bytes: kept at their measured time, nothing claimed.", 11,
                         extra='fill="#555"'))
    height = y + 16
    out[0] = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}">')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def figure_paths(report: Path) -> dict[str, Path]:
    """``report.md`` -> ``report.roofline.svg``, ``report.budget.svg`` beside it."""
    stem = report.name[:-3] if report.name.endswith(".md") else report.name
    return {name: report.with_name(f"{stem}.{name}.svg") for name in FIGURES}


def write_figures(report: Path, analysis: Any) -> dict[str, str]:
    """Write the figures the analysis has beside ``report``; name -> link relative to it."""
    from workloads.atomic import write_text_atomic

    written: dict[str, str] = {}
    if analysis is None or str(report) == "-":
        return written
    makers = {"roofline": roofline_svg, "budget": budget_svg}
    for name, path in figure_paths(report).items():
        svg = makers[name](analysis)
        if svg is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, svg)
            written[name] = path.name
    return written
