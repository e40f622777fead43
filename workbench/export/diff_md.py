"""Render a RunDiff (analyzers.diff) as Markdown; the CLI prints the same text."""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.export.escape import md_text
from workbench.export.fmt import fmt_num


def headline(diff: Any) -> str:
    """One line: the verdict, the compared figure's ratio, its 95% CI and noise floor."""
    reason = getattr(diff, "verdict_reason", None)
    if diff.verdict == "not comparable":
        return f"verdict: not comparable: {reason} (--force compares anyway)"
    if diff.speedup is None:
        return f"verdict: {diff.verdict} — {reason or 'no figure both runs have'}"
    figure = getattr(diff, "figure", "latency median")
    slower = (1.0 / diff.speedup - 1.0) * 100.0
    direction = (f"candidate {abs(diff.change_pct):.1f}% faster" if diff.speedup >= 1.0
                 else f"candidate {slower:.1f}% slower")
    ci = (f", 95% CI {diff.ci_low:.3f}x..{diff.ci_high:.3f}x" if diff.ci_low is not None
          else ", no CI")
    floor = (f"noise floor {diff.noise_floor_pct:.1f}%" if diff.noise_floor_pct is not None
             else "no noise floor: no repeats")
    text = (f"verdict: {diff.verdict} — speedup {diff.speedup:.3f}x by {figure} "
            f"({direction}{ci}; {floor})")
    if reason and diff.verdict in ("inconclusive", "identical"):
        text += f"; {reason}"
    return text


def comparability_lines(diff: Any) -> list[str]:
    """The "Comparability" section: what was checked, what differs, what may differ."""
    comp = getattr(diff, "comparability", None)
    if comp is None:
        return []
    out = ["## Comparability", "", f"- {md_text(comp.summary())}"]
    if comp.score is not None:
        out.append(f"- kernel score {comp.score:.2f}: launch ratio x share of kernel names in "
                   "common (nsys-ai's comparability score); below 0.50 no verdict is given")
    out += [f"- {md_text(r)}" for r in comp.reasons]
    if comp.allowed:
        out.append("- differs, as a diff may: " + "; ".join(comp.allowed))
    return out


def _ms(ns: Any) -> str:
    return "n/a" if ns is None or pd.isna(ns) else fmt_num(float(ns) / 1e6, 4, "ms")


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):+.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in rows]
    return out


def render_diff_markdown(diff: Any, label_a: str, label_b: str, top: int = 15,
                         notes: list[str] | None = None) -> str:
    a, b = diff.baseline, diff.candidate
    lines = [f"# Diff: {md_text(label_a)} → {md_text(label_b)}", "", headline(diff), ""]
    rows = [["run", str(a.run_id or label_a), str(b.run_id or label_b)],
            ["device", str(a.device_name or "n/a"), str(b.device_name or "n/a")]]
    figure = getattr(diff, "figure", "latency median")
    if figure not in ("latency median", "none"):  # label the figure as what it is
        rows.append([f"{figure} (compared)", fmt_num(diff.baseline_ms, 4, "ms"),
                     fmt_num(diff.candidate_ms, 4, "ms")])
    if a.latency_median_ms is not None or b.latency_median_ms is not None:
        rows += [
            ["latency median", fmt_num(a.latency_median_ms, 4, "ms"),
             fmt_num(b.latency_median_ms, 4, "ms")],
            ["latency CV", fmt_num(a.latency_cv_pct, 3, "%"), fmt_num(b.latency_cv_pct, 3, "%")],
            ["repeats", str(a.n if a.n is not None else "n/a"),
             str(b.n if b.n is not None else "n/a")],
            ["tokens/s", fmt_num(a.tokens_per_s, 4), fmt_num(b.tokens_per_s, 4)]]
    lines += _table(["", "baseline", "candidate"], rows)
    comparability = comparability_lines(diff)
    if comparability:
        lines += ["", *comparability]
    if diff.warnings:
        lines += ["", "## Warnings", ""] + [f"- {md_text(w)}" for w in diff.warnings]
    unit = "per step" if diff.per_step else "whole artifact"
    if diff.categories is not None and len(diff.categories):
        lines += ["", f"## GPU time by category ({unit})", ""]
        lines += _table(["category", "baseline", "candidate", "delta", "delta %"], [
            [str(r.category), _ms(r.baseline_ns), _ms(r.candidate_ns), _ms(r.delta_ns),
             _pct(r.delta_pct)] for r in diff.categories.itertuples()])
    if diff.kernels is not None and len(diff.kernels):
        shown = diff.kernels.head(top)
        lines += ["", f"## Kernels with the largest change ({unit}, top {len(shown)} "
                  f"of {len(diff.kernels)})", ""]
        lines += _table(["kernel", "status", "count a→b", "baseline", "candidate", "delta",
                         "delta %"], [
            [_short(r.name), str(r.status), f"{r.baseline_count:g}→{r.candidate_count:g}",
             _ms(r.baseline_ns), _ms(r.candidate_ns), _ms(r.delta_ns), _pct(r.delta_pct)]
            for r in shown.itertuples()])
    for title, names in (("Appeared", diff.appeared), ("Disappeared", diff.disappeared)):
        if names:
            lines += ["", f"## {title} kernels ({len(names)})", ""]
            lines += [f"- {md_text(_short(n))}" for n in names[:top]]
            if len(names) > top:
                lines.append(f"- … and {len(names) - top} more")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {md_text(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def _short(name: Any, width: int = 90) -> str:
    text = str(name)  # escaped where it is placed (a cell or a list item)
    return text if len(text) <= width else text[: width - 1] + "…"
