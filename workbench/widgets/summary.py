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

from sessions.store import RunRecord
from workbench.widgets.formatting import (
    NA,
    fmt_bytes,
    fmt_float,
    fmt_pct,
    fmt_si,
    is_missing,
)


def _table(title: str) -> Table:
    table = Table(title=Text(title, style="bold"), title_justify="left", show_header=False,
                  box=None, padding=(0, 1), expand=False)
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
    _row(table, "achieved", fmt_si(_scaled(metrics.get("achieved_tflops"), 1e12), "FLOP/s"),
         fmt_si(_scaled(metrics.get("achieved_gb_s"), 1e9), "B/s"))
    return table


def _scaled(value: Any, factor: float) -> float | None:
    return None if is_missing(value) or not isinstance(value, (int, float)) else value * factor


def parity_table(parity: dict[str, Any]) -> Table:
    table = _table("Parity")
    if not parity:
        _row(table, "vs reference", NA, "no parity check recorded")
        return table
    ok = parity.get("ok")
    _row(table, f"vs {parity.get('reference', 'L0')}",
         NA if ok is None else ("ok" if ok else "MISMATCH"),
         f"tolerance {fmt_float(parity.get('tolerance'), 6)}")
    _row(table, "max rel err", fmt_float(parity.get("max_rel_err"), 6))
    _row(table, "top-1 agreement", fmt_pct(parity.get("top1_agreement")),
         f"{parity.get('tokens_compared', NA)} tokens")
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
    text.append(record.status.upper(), style="bold reverse" if record.status != "ok" else "bold")
    text.append(f"\n{spec.get('workload', NA)}/{spec.get('preset', NA)}  layers "
                f"{','.join(spec.get('layers') or []) or NA}  profiler {spec.get('profiler', NA)}"
                f"  device {record.env.get('device_name', NA)}")
    if record.label:
        text.append("\nlabel: ")
        text.append(record.label)
    if record.error:
        text.append("\nerror: ", style="bold")
        text.append(record.error)
    return text


def summary_renderable(record: RunRecord) -> RenderableType:
    env = {k: record.env.get(k) for k in ("device_name", "cc", "driver", "cuda", "torch")
           if k in record.env}
    return Group(
        header_text(record), Text(""),
        metrics_table(record.metrics), Text(""),
        parity_table(record.parity), Text(""),
        flat_table("Telemetry", record.telemetry, "no telemetry (NVML n/a)"), Text(""),
        flat_table("Environment", env, "n/a"),
    )


class SummaryPanel(VerticalScroll, can_focus=True):
    def __init__(self, record: RunRecord, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(summary_renderable(self.record), id="summary-body")


def advice_renderable(advice: list[Any]) -> RenderableType:
    if not advice:
        return Text("No advice yet: the rule engine lands with the advice issue. Findings for "
                    "this run will show here once it exists.")
    parts: list[RenderableType] = []
    for number, item in enumerate(advice, 1):
        title = item.get("title") if isinstance(item, dict) else getattr(item, "title", None)
        body = item.get("detail") if isinstance(item, dict) else getattr(item, "detail", None)
        line = Text(f"{number}. ", style="bold")
        line.append(str(title if title is not None else item), style="bold")
        parts.append(line)
        if body:
            parts.append(Text("   " + str(body)))
    return Group(*parts)


class AdvicePanel(VerticalScroll, can_focus=True):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(Text("Loading analysis…"), id="advice-body")

    def set_advice(self, advice: list[Any]) -> None:
        self.query_one("#advice-body", Static).update(advice_renderable(advice))
