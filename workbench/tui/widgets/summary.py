"""Summary and Advice tabs: a run record's metrics (with spread), parity, telemetry, env.

Every string from a record goes into ``rich.text.Text`` (never into markup), so labels, errors
and kernel names show exactly as typed.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from sessions.records import RunRecord, RunStatus
from workbench.api.views import AnalysisView
from workbench.export.fmt import (
    NA,
    fmt_bytes,
    fmt_count,
    fmt_float,
    fmt_ns,
    fmt_pct,
    fmt_rate,
    is_missing,
)


def _table(title: str) -> Table:
    table = Table(title=Text(title, style="bold"), title_justify="left", show_header=False,
                  box=None, padding=(0, 1), expand=False, min_width=len(title) + 2)
    table.add_column("what", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_column("spread")
    return table


def _row(table: Table, label: str, value: str, spread: str = "") -> None:
    table.add_row(Text(label), Text(value), Text(spread, style="dim"))


def metrics_table(metrics: dict[str, Any]) -> Table:
    table = _table("Metrics")
    lat = metrics.get("latency_ms") or {}
    spread = NA
    if lat:
        spread = (f"p10 {fmt_float(lat.get('p10'))} · p90 {fmt_float(lat.get('p90'))} · "
                  f"p99 {fmt_float(lat.get('p99'))} · sd {fmt_float(lat.get('stdev'), 3)} · "
                  f"n={lat.get('n', NA)}")
    step = metrics.get("step")
    _row(table, f"latency ({step})" if step else "latency", fmt_float(lat.get("median"), 3, "ms"),
         spread)
    _row(table, "tokens/s", fmt_float(metrics.get("tokens_per_s"), 1))
    _row(table, "prefill", fmt_float(metrics.get("prefill_ms"), 3, "ms"),
         f"{fmt_float(metrics.get('prefill_tokens_per_s'), 1)} tok/s")
    _row(table, "TTFT / TPOT", f"{fmt_float(metrics.get('ttft_ms'), 3)} / "
         f"{fmt_float(metrics.get('tpot_ms'), 3)} ms")
    _row(table, "peak memory", fmt_bytes(metrics.get("peak_mem_bytes")))
    _row(table, "achieved", fmt_rate(_scaled(metrics.get("achieved_tflops"), 1e12), "FLOP/s"),
         fmt_rate(_scaled(metrics.get("achieved_gb_s"), 1e9), "B/s"))
    return table


def _scaled(value: Any, factor: float) -> float | None:
    return None if is_missing(value) or not isinstance(value, (int, float)) else value * factor


def parity_table(parity: dict[str, Any]) -> Table:
    table = _table("Parity")
    if not parity:
        _row(table, "vs reference", NA, "no parity check recorded")
        return table
    if parity.get("skipped"):
        _row(table, "vs reference", "skipped", str(parity["skipped"]))
        return table
    ok = parity.get("ok")
    _row(table, f"vs {parity.get('reference', 'L0')}",
         NA if ok is None else ("ok" if ok else "MISMATCH"),
         _tolerance(parity.get("tolerance")))
    _row(table, "max rel err", fmt_float(parity.get("max_rel_err"), 6))
    _row(table, "top-1 agreement", fmt_pct(parity.get("top1_agreement")),
         f"{parity.get('tokens_compared', NA)} tokens")
    return table


def _tolerance(tolerance: Any) -> str:
    """The parity tolerance: a number, or the child's {max_rel_err, min_top1_agreement}."""
    if isinstance(tolerance, dict):
        parts = []
        if not is_missing(tolerance.get("max_rel_err")):
            parts.append(f"max rel err ≤ {tolerance['max_rel_err']:g}")
        if not is_missing(tolerance.get("min_top1_agreement")):
            parts.append(f"top-1 ≥ {fmt_pct(tolerance['min_top1_agreement'])}")
        return "tolerance " + (" · ".join(parts) or NA)
    return f"tolerance {fmt_float(tolerance, 6)}"


def _range(low: Any, high: Any, unit: str) -> str:
    if is_missing(low) and is_missing(high):
        return NA
    if low == high or is_missing(low) or is_missing(high):
        return f"{fmt_float(high if is_missing(low) else low, 0)} {unit}"
    return f"{fmt_float(low, 0)}–{fmt_float(high, 0)} {unit}"


def telemetry_table(telemetry: dict[str, Any]) -> Table:
    """profilers.nvml.summarize_samples' summary; n/a (with the reason) without NVML."""
    table = _table("Telemetry")
    if not telemetry or not telemetry.get("available"):
        _row(table, "NVML", NA, str(telemetry.get("reason") or "not recorded"))
        return table
    limit = telemetry.get("power_limit_w")
    _row(table, "power", f"{fmt_float(telemetry.get('power_w_mean'), 0)} W mean",
         f"max {fmt_float(telemetry.get('power_w_max'), 0)} W" +
         ("" if is_missing(limit) else f" · limit {fmt_float(limit, 0)} W"))
    _row(table, "energy", fmt_float(telemetry.get("energy_j"), 1, "J"),
         f"{telemetry.get('n_samples', NA)} samples over "
         f"{fmt_float(telemetry.get('duration_s'), 2)} s")
    _row(table, "SM clock", _range(telemetry.get("sm_mhz_min"), telemetry.get("sm_mhz_max"),
                                   "MHz"),
         "mem " + _range(telemetry.get("mem_mhz_min"), telemetry.get("mem_mhz_max"), "MHz"))
    _row(table, "GPU util", fmt_float(telemetry.get("gpu_util_mean"), 0, "% mean"),
         f"max temp {fmt_float(telemetry.get('temp_c_max'), 0)} °C")
    _row(table, "memory used", fmt_bytes(telemetry.get("mem_used_bytes_max")), "max")
    reasons = telemetry.get("throttle_reasons") or []
    _row(table, "throttling", ", ".join(map(str, reasons)) if reasons else
         ("none seen" if telemetry.get("throttle_seen") is False else NA))
    return table


def flat_table(title: str, data: dict[str, Any], empty: str) -> Table:
    table = _table(title)
    if not data:
        _row(table, empty, "")
    for key, value in data.items():
        if isinstance(value, dict):
            shown = " · ".join(f"{k} {_plain(v)}" for k, v in value.items())
        else:
            shown = _plain(value)
        _row(table, str(key), shown)
    return table


def _plain(value: Any) -> str:
    if is_missing(value):
        return NA
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def header_text(record: RunRecord) -> Text:
    spec = record.spec
    text = Text()
    text.append(f"{record.id}  ", style="bold")
    text.append(record.status.value.upper(),
                style="bold reverse" if record.status is not RunStatus.OK else "bold")
    if spec is None:  # `analyze --save`: artifacts from elsewhere, no workload
        text.append(f"\nanalysis of {record.artifact_format or NA} artifact: ")
        text.append(", ".join(record.inputs) or NA)
    else:
        text.append(f"\n{spec.workload or NA}/{spec.preset or NA}  layers "
                    f"{','.join(spec.layers) or NA}  profiler "
                    f"{record.profiler or NA}  device {record.env.get('device_name', NA)}")
    if record.label:
        text.append("\nlabel: ")
        text.append(record.label)
    if record.error:
        text.append("\nerror: ", style="bold")
        text.append(record.error)
    return text


def summary_renderable(record: RunRecord) -> RenderableType:
    if record.spec is None:  # no run: no metrics, parity, telemetry; the analysis follows
        return Group(header_text(record), Text(""))
    env: dict[str, Any] = {k: record.env.get(k) for k in ("device_name", "cc", "driver",
                                                          "cuda", "torch") if k in record.env}
    return Group(
        header_text(record), Text(""),
        metrics_table(dict(record.metrics)), Text(""),
        parity_table(dict(record.parity)), Text(""),
        telemetry_table(record.telemetry), Text(""),
        flat_table("Environment", env, "n/a"),
    )


def _frame_table(title: str, frame: Any, columns: tuple[tuple[str, str], ...],
                 limit: int) -> Table:
    table = Table(title=Text(title, style="bold"), title_justify="left", box=None,
                  padding=(0, 1), expand=False, header_style="dim")
    for key, label in columns:
        table.add_column(label, justify="left" if key in ("name", "category") else "right",
                         no_wrap=key != "name", overflow="ellipsis", max_width=48)
    for row in frame.head(limit).to_dict("records"):
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key.endswith("_ns"):
                cells.append(Text(fmt_ns(value)))
            elif key == "share":
                cells.append(Text(fmt_pct(value)))
            elif key == "count":
                cells.append(Text(fmt_count(value)))
            else:
                cells.append(Text(str(value), no_wrap=True, overflow="ellipsis"))
        table.add_row(*cells)
    return table


def analysis_renderable(analysis: AnalysisView) -> RenderableType:
    """Where the time went: GPU time by category and the top kernels (or CPU ops)."""
    if analysis.error:
        return Text(f"Analysis failed: {analysis.error}")
    kernels = analysis.kernels
    parts: list[RenderableType] = []
    if kernels is not None and len(kernels):
        line = Text("Kernels", style="bold")
        line.append(f"  {len(kernels):,} from {analysis.source or NA} on "
                    f"{analysis.device_name or NA} · GPU time "
                    f"{fmt_ns(kernels['dur_ns'].sum())}", style="")
        parts.append(line)
    if analysis.categories is not None and len(analysis.categories):
        parts += [_frame_table("GPU time by category", analysis.categories, (
            ("category", "category"), ("count", "kernels"), ("total_ns", "time"),
            ("share", "share")), 10), Text("")]
    if analysis.top_kernels is not None and len(analysis.top_kernels):
        parts.append(_frame_table("Top kernels", analysis.top_kernels, (
            ("name", "kernel"), ("count", "calls"), ("total_ns", "time"), ("share", "share")), 5))
    elif analysis.cpu_ops is not None and len(analysis.cpu_ops):
        parts.append(_frame_table("Top CPU ops (no GPU kernels in this trace)", analysis.cpu_ops,
                                  (("name", "op"), ("count", "calls"), ("total_ns", "time"),
                                   ("mean_ns", "mean")), 5))
    for note in analysis.notes:
        parts.append(Text(f"· {note}", style="dim"))
    return Group(*parts) if parts else Text("")


class SummaryPanel(VerticalScroll, can_focus=True):
    def __init__(self, record: RunRecord, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(summary_renderable(self.record), id="summary-body")
        yield Static(Text("Loading analysis…", style="dim"), id="summary-analysis")

    def set_analysis(self, analysis: AnalysisView) -> None:
        self.query_one("#summary-analysis", Static).update(analysis_renderable(analysis))


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def advice_renderable(advice: list[Any]) -> RenderableType:
    """Rule findings, best first: what, the measurements behind it, what to do, what it buys."""
    if not advice:
        return Text("No rule fired for this run: nothing in its measurements crossed a "
                    "threshold. Press l to ask Claude (shows the request first).")
    parts: list[RenderableType] = []
    for number, item in enumerate(advice, 1):
        line = Text(f"{number}. ", style="bold")
        line.append(str(_field(item, "finding") or _field(item, "title") or item), style="bold")
        confidence = _field(item, "confidence")
        if confidence:
            line.append(f"  [{confidence}]")
        parts.append(line)
        for evidence in _field(item, "evidence") or ():
            text = evidence.text() if hasattr(evidence, "text") else str(evidence)
            parts.append(Text("   evidence: " + text))
        action, layer = _field(item, "action"), _field(item, "layer")
        if action:
            named = layer and f"layer {layer}" in str(action)  # named in place already
            parts.append(Text("   do: " + str(action)
                              + (f" (layer {layer})" if layer and not named else "")))
        effect = _field(item, "expected_effect") or _field(item, "detail")
        if effect:
            parts.append(Text("   expect: " + str(effect)))
        if _field(item, "recoverable"):
            parts.append(Text("   recover: " + str(_field(item, "recoverable"))))
    return Group(*parts)


def llm_renderable(stored_answer: dict[str, Any] | None, streamed: str = "") -> RenderableType:
    """Claude's answer: the one streaming in, else the one stored with the session."""
    stored = stored_answer or {}
    text = streamed or str(stored.get("text") or "")
    if not text:
        return Text("")
    model = stored.get("model") if not streamed else None
    header = Text("\nClaude's advice" + (f" ({model})" if model else ""), style="bold")
    return Group(header, Text(text))


class AdvicePanel(VerticalScroll, can_focus=True):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Loading analysis…"), id="advice-body")
        yield Static(Text(""), id="advice-llm")

    def set_advice(self, advice: list[Any], llm_advice: dict[str, Any] | None = None) -> None:
        self.query_one("#advice-body", Static).update(advice_renderable(advice))
        self.query_one("#advice-llm", Static).update(llm_renderable(llm_advice))

    def show_llm_text(self, text: str) -> None:
        """The answer so far, as it streams in (called on the UI thread)."""
        self.query_one("#advice-llm", Static).update(llm_renderable(None, text))
