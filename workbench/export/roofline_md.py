"""The "Roofline" (one row per kernel) and "Speed-of-light budget" sections of a report, with
links to their SVG figures when the report was written to a file beside them."""

from __future__ import annotations

from typing import Any

from analyzers.sol_budget import REMEDY_TEXT
from workbench.export.escape import md_text
from workbench.export.fmt import (
    NA,
    fmt_ns,
    fmt_num,
    fmt_pct,
    fmt_rate,
    is_missing,
    md_table,
    shorten,
)

ROOFLINE_ROWS = 15


def _pct(value: Any) -> str:
    return NA if is_missing(value) else f"{float(value):.1f}%"


def _text(value: Any) -> str:
    return NA if is_missing(value) else str(value)


def _figure(figures: dict[str, str] | None, key: str, title: str) -> list[str]:
    if figures and key in figures:
        return [f"![{title}]({figures[key]})", ""]
    return []


def roofline_section(a: Any, figures: dict[str, str] | None = None) -> list[str]:
    kernels = a.roofline
    c = a.ceilings
    out = ["## Roofline", ""]
    if c is not None:
        peaks = ", ".join(f"{k} {fmt_rate(v, 'FLOP/s')}" for k, v in c.peak_flops.items() if v)
        out += [f"Ceilings ({md_text(c.source)}, {md_text(c.device_name)}): {peaks}; DRAM "
                f"{fmt_rate(c.dram_bw, 'B/s')}.", ""]
    out += _figure(figures, "roofline", "Roofline: one point per kernel, sized by its time")
    rows = kernels.head(ROOFLINE_ROWS)
    out.append(md_table(
        ["kernel", "launches", "time", "FLOP/s", "B/s", "FLOP/B", "bound", "% of roof", "roof",
         "FLOPs/bytes from"], align="lrrrrrlrll", rows=[
            [shorten(str(r.name), 60), r.launches, fmt_ns(r.total_ns),
             fmt_rate(r.achieved_flops_per_s, "FLOP/s"), fmt_rate(r.achieved_bytes_per_s, "B/s"),
             fmt_num(r.arithmetic_intensity, 3), _text(r.bound), _pct(r.pct_of_roof),
             f"{r.roof} {r.precision}", _text(r.cost_source)]
            for r in rows.itertuples()]))
    if len(kernels) > ROOFLINE_ROWS:
        out += ["", f"{len(kernels) - ROOFLINE_ROWS} more kernels in the JSON export."]
    step = a.roofline_aggregate
    if step is not None:
        out += ["", f"Whole step: {fmt_rate(step.achieved_flops_per_s, 'FLOP/s')}, "
                f"{fmt_rate(step.achieved_bytes_per_s, 'B/s')}, intensity "
                f"{fmt_num(step.arithmetic_intensity, 3)} FLOP/B, {step.bound or NA}-bound, "
                f"{_pct(step.pct_of_roof)} of its roof "
                f"(FLOPs known for {fmt_pct(step.flops_time_coverage)} of kernel time, bytes for "
                f"{fmt_pct(step.bytes_time_coverage)})."]
    return out


def remedy_cell(line: Any) -> str:
    """The layer this run can add, else what would address the line."""
    what = REMEDY_TEXT.get(line.remedy or "", line.remedy or "")
    if line.layer:
        return f"{line.layer}: {what}" if what else str(line.layer)
    return what or NA


def budget_summary(b: Any) -> str:
    steps = f"the mean of {b.steps} profiled steps" if b.steps > 1 else "one step"
    ceilings = ("ceilings calibrated on this device" if b.ceilings_source == "measured"
                else "spec-sheet ceilings")
    return (f"Measured step {fmt_ns(b.step_ns)} ({steps}); at speed of light "
            f"{fmt_ns(b.sol_ns)}: every kernel at its roof ({ceilings}"
            + (f", {md_text(b.device_name)}" if b.device_name else "") + "), no idle or host time. "
            f"GPU busy {fmt_ns(b.kernel_ns)}, idle gaps {fmt_ns(b.idle_ns)}, host "
            f"{fmt_ns(b.host_ns)}. FLOPs and bytes known for {fmt_pct(b.coverage)} of kernel "
            "time.")


def budget_section(a: Any, figures: dict[str, str] | None = None) -> list[str]:
    b = a.budget
    out = ["## Speed-of-light budget", "", budget_summary(b), ""]
    out += _figure(figures, "budget", "Speed-of-light budget: microseconds lost per step")
    out.append(md_table(
        ["#", "where the time goes", "launches", "measured", "at roof", "lost", "of step",
         "% of roof", "addressed by", "why"], align="rlrrrrrrll", rows=[
            [i, shorten(line.name, 60), NA if line.launches is None or line.kind != "kernel"
             and line.kind != "category" else line.launches, fmt_ns(line.measured_ns),
             fmt_ns(line.sol_ns), fmt_ns(line.lost_ns), fmt_pct(line.share_of_step),
             _pct(line.pct_of_roof), remedy_cell(line), line.why]
            for i, line in enumerate(b.lines, 1)]))
    out += ["", "All figures per step. Lost = measured - at roof; a line of unknown FLOPs or "
            "bytes claims nothing. A remedy without a layer: the run already has its layer, or "
            "no layer of its workload provides it (an artifact from elsewhere gets none)."]
    out += [f"_{md_text(note)}_" for note in b.notes]
    return out
