"""The optimization ladder as a table: one row per layer stack, each a stored session.

Speedups are ratios of tokens/s (higher is better), per step (vs the nearest row above
that ran, kept parity and applied a layer) and cumulative (vs the first row, normally L0). A
row whose parity check failed gets no speedup: it shows "PARITY FAIL" — a faster wrong answer
is not a gain. A row none of whose added layers was applied (L4 on a CPU) gets none either: it
ran the stack above it again, so its ratio is run-to-run noise; it shows "not applied: why". A
step slower than the one before gets an explanation line: layers that were not applied (and
why), the known costs of a layer, or run-to-run spread, with this run's measured p10-p90
spreads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.export.escape import md_text
from workbench.export.fmt import NA, fmt_bytes, fmt_num, md_table

NO_EFFECT = "no effect"  # how a layer's note starts when it ran but changed nothing
# Why a layer can make a step slower although it is applied (shown when it does).
KNOWN_COSTS = {
    "L1": "TF32 changes fp32 matmuls only; a bf16/fp16 model runs the same math",
    "L2": "the static cache attends over max_seq slots with a mask instead of the exact "
          "prefix; it pays off once graphs (L4) or compile (L5) use the static shapes",
    "L3": "at batch-1 decode attention is a small share of the step; SDPA's mask handling "
          "can cost more than it saves at short contexts",
    "L6-paged": "without a paged-attention kernel every step gathers the blocks into a "
                "contiguous view (one extra copy of the context per layer); paging buys "
                "memory flexibility, not speed",
    "L6-fp8kv": "the FP8 cache is dequantized before attention; at short contexts the KV "
                "cache is a small share of the bytes, so halving it cannot pay for that",
    "L6-spec": "each round runs k+1 draft steps and one target pass of k+1 tokens; with a "
               "low acceptance rate (random weights) few tokens come per round",
}


@dataclass
class LadderRow:
    label: str  # what this step adds, e.g. "+L2"
    layers: list[str]
    run_id: str
    status: str
    tokens_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    p10_ms: float | None
    p90_ms: float | None
    peak_mem_bytes: float | None
    parity_ok: bool | None
    max_rel_err: float | None
    top1: float | None
    not_applied: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    step_speedup: float | None = None
    cumulative_speedup: float | None = None
    explanation: str | None = None
    added: list[str] = field(default_factory=list)  # the layers this row adds to the one above

    @property
    def skipped_all(self) -> str | None:
        """Why, when no layer this row adds took effect — not applied, or applied with the
        layer's own "no effect" note (TF32 on a CPU) — so the row measures the stack above it
        again; None when one did (or it adds none)."""
        reasons = dict(self.not_applied)
        reasons.update({name: note for name, note in self.notes
                        if note.startswith(NO_EFFECT) and name not in reasons})
        if not self.added or any(name not in reasons for name in self.added):
            return None
        return "; ".join(f"{name} {reasons[name]}".strip() for name in self.added)

    @property
    def skipped_word(self) -> str:
        """"not applied", or "no effect" when a layer ran but said it changed nothing."""
        return "not applied" if all(name in dict(self.not_applied) for name in self.added) \
            else "no effect"

    @property
    def spread_pct(self) -> float | None:
        """This row's measured p10-p90 spread, as a share of its median latency (%)."""
        if None in (self.p10_ms, self.p90_ms) or not self.p50_ms:
            return None
        return (self.p90_ms - self.p10_ms) / self.p50_ms * 100  # type: ignore[operator]

    @property
    def parity_text(self) -> str:
        if self.parity_ok is None:
            return NA
        detail = f"rel {fmt_num(self.max_rel_err, 2)}, top-1 {fmt_num(self.top1, 3)}"
        return f"ok ({detail})" if self.parity_ok else f"PARITY FAIL ({detail})"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def row_from_record(record: Any, label: str) -> LadderRow:
    metrics = record.metrics or {}
    latency = metrics.get("latency_ms") or {}
    parity = record.parity or {}
    outcomes = record.layers_applied
    extra = record.details
    parity_ok = parity.get("ok") if isinstance(parity.get("ok"), bool) else None
    speculative = extra.get("speculative") or {}
    if parity_ok and speculative.get("matches_greedy") is False \
            and speculative.get("verdict") != "near_tie":
        parity_ok = False  # speculative decoding must reproduce the greedy decode (up to a tie)
    notes = [(o["name"], o["reason"]) for o in outcomes if o.get("applied") and o.get("reason")]
    if speculative.get("verdict") in ("near_tie", "diverged"):
        notes.append(("L6-spec", f"departs from the greedy decode at token "
                      f"{speculative.get('first_departure_step')} where the two logits differ by "
                      f"{_num(speculative.get('departure_gap_rel')) or 0:.2g} of the largest "
                      f"(tolerance {_num(speculative.get('tolerance_rel')) or 0:.2g}): "
                      + ("a near-tie, rounding" if speculative["verdict"] == "near_tie"
                         else "a clear winner, a bug")))
    return LadderRow(
        label=label, layers=list(record.spec.layers if record.spec else []), run_id=record.id,
        status=str(record.status), tokens_per_s=_num(metrics.get("tokens_per_s")),
        p50_ms=_num(latency.get("median")), p99_ms=_num(latency.get("p99")),
        p10_ms=_num(latency.get("p10")), p90_ms=_num(latency.get("p90")),
        peak_mem_bytes=_num(metrics.get("peak_mem_bytes")), parity_ok=parity_ok,
        max_rel_err=_num(parity.get("max_rel_err")), top1=_num(parity.get("top1_agreement")),
        not_applied=[(o["name"], o.get("reason") or "") for o in outcomes
                     if not o.get("applied")],
        notes=notes, extra=extra, error=record.error)


def _spreads(row: LadderRow, previous: LadderRow) -> str:
    """The two rows' measured p10-p90 spreads, in this run."""
    def one(r: LadderRow) -> str:
        return NA if r.spread_pct is None else f"{r.spread_pct:.0f}%"

    return f"p10-p90 spread {one(previous)} → {one(row)} of the median in this run"


def _explain(row: LadderRow, previous: LadderRow) -> str:
    added = [n for n in row.layers if n not in previous.layers]
    skipped = [f"{n} not applied ({why})" for n, why in row.not_applied if n in added]
    parts = skipped[:]
    overlap = None not in (row.p10_ms, row.p90_ms, previous.p10_ms, previous.p90_ms) \
        and row.p10_ms <= previous.p90_ms and previous.p10_ms <= row.p90_ms  # type: ignore[operator]
    if overlap:
        parts.append(f"within run-to-run spread: the p10-p90 ranges overlap "
                     f"({fmt_num(previous.p10_ms)}–{fmt_num(previous.p90_ms)} ms vs "
                     f"{fmt_num(row.p10_ms)}–{fmt_num(row.p90_ms)} ms)")
    parts += [f"{n}: {KNOWN_COSTS[n]}" for n in added if n in KNOWN_COSTS
              and n not in dict(row.not_applied)]
    if _eager(row) and _eager(previous):
        parts.append("both steps run eagerly, and eager decode is bound by the host's kernel "
                     f"launches, so a small difference may not be the layer ({_spreads(row, previous)})")
    spec = row.extra.get("speculative") or {}
    if spec.get("acceptance_rate") is not None:
        parts.append(f"speculative acceptance rate {spec['acceptance_rate']:.0%}, "
                     f"{fmt_num(spec.get('tokens_per_round'))} tokens per round")
    return "; ".join(parts) or "slower with no known cause: profile both sessions and diff them"


def _eager(row: LadderRow) -> bool:
    """The step ran without CUDA graphs or torch.compile (the dense runtime says so)."""
    runtime = row.extra.get("runtime")
    return isinstance(runtime, dict) and not runtime.get("cuda_graphs") \
        and not runtime.get("compile_mode")


def build_ladder(records: list[Any]) -> list[LadderRow]:
    """Rows in run order with speedups and explanations filled in."""
    rows: list[LadderRow] = []
    for index, record in enumerate(records):
        layers = list(record.spec.layers if record.spec else [])
        previous = records[index - 1].spec if index else None
        before = set(previous.layers if previous else [])
        added = [n for n in layers if n not in before]
        label = "+".join(added) if index and added else ",".join(layers) or "L0"
        rows.append(row_from_record(record, label if not index else f"+{label}"))
        rows[-1].added = added if index else []
    base = rows[0].tokens_per_s if rows and rows[0].parity_ok is not False else None
    for index, row in enumerate(rows):
        if row.status != "ok" or row.parity_ok is False or row.tokens_per_s is None \
                or row.skipped_all:
            continue
        if base:
            row.cumulative_speedup = row.tokens_per_s / base
        # Per step = vs the last row above that ran, kept parity and changed something (a
        # failed row is no base, and a row whose layers were not applied repeats one).
        previous = next((r for r in reversed(rows[:index]) if r.status == "ok"
                         and r.parity_ok is not False and r.tokens_per_s
                         and not r.skipped_all), None)
        if previous is not None and previous.tokens_per_s:
            row.step_speedup = row.tokens_per_s / previous.tokens_per_s
            if row.step_speedup < 1.0:
                row.explanation = _explain(row, previous)
    return rows


def _speedup(value: float | None, row: LadderRow) -> str:
    if row.status != "ok":
        return row.status.upper()
    if row.parity_ok is False:
        return "PARITY FAIL"
    if row.skipped_all:
        return row.skipped_word
    return NA if value is None else f"{value:.2f}x"


def render_ladder_markdown(rows: list[LadderRow], meta: dict[str, Any]) -> str:
    """A standalone Markdown report: context, the table, explanations, layer notes."""
    lines = [f"# Optimization ladder — {meta.get('workload', 'dense')} / "
             f"{meta.get('preset', '?')}", ""]
    context = [("device", meta.get("device")), ("torch", meta.get("torch")),
               ("step", meta.get("step")), ("dtype", meta.get("dtype")),
               ("repeats", meta.get("repeat")), ("memory estimate", meta.get("memory"))]
    lines += [f"- {k}: {v}" for k, v in context if v not in (None, "")]
    lines += ["- speedups are ratios of tokens/s; per step = vs the row above, cumulative = vs "
              "the first row. A row that fails the parity check against the L0 reference "
              "shows PARITY FAIL instead of a speedup.", ""]
    table = [[row.label, fmt_num(row.tokens_per_s), fmt_num(row.p50_ms), fmt_num(row.p99_ms),
              _speedup(row.step_speedup, row) if row is not rows[0] else "—",
              _speedup(row.cumulative_speedup, row), fmt_bytes(row.peak_mem_bytes),
              row.parity_text, row.run_id] for row in rows]
    lines.append(md_table(["step", "tokens/s", "p50 ms", "p99 ms", "step speedup",
                           "cumulative", "peak memory", "parity vs L0", "session"], table,
                          align="lrrrrrrll"))
    explained = [row for row in rows if row.explanation or row.error or row.parity_ok is False
                 or (row.skipped_all and row.status == "ok")]
    if explained:
        lines += ["", "## Why some steps are not faster", ""]
        for row in explained:
            if row.skipped_all and not row.error and row.parity_ok is not False:
                lines.append(f"- **{md_text(row.label)}** {row.skipped_word}: "
                             f"{md_text(row.skipped_all)} — this row ran the stack above it "
                             "again, so it shows no speedup.")
            elif row.error:
                lines.append(f"- **{md_text(row.label)}** {md_text(row.status)}: "
                             f"{md_text(row.error)}")
            elif row.parity_ok is False:
                lines.append(f"- **{row.label}** breaks parity ({row.parity_text}): not "
                             "counted as a speedup.")
            else:
                lines.append(f"- **{row.label}** is {row.step_speedup:.2f}x the step before: "
                             f"{row.explanation}")
    notes = [(row.label, name, text) for row in rows for name, text in row.notes]
    skipped = sorted({(name, why) for row in rows for name, why in row.not_applied})
    if notes or skipped:
        lines += ["", "## Layers", ""]
        seen: set[tuple[str, str]] = set()
        for _label, name, text in notes:
            if (name, text) not in seen:
                seen.add((name, text))
                lines.append(f"- {name}: {text}")
        lines += [f"- {name}: not applied — {why}" for name, why in skipped]
    return "\n".join(lines) + "\n"
