"""Headline numbers of one run, with their spread, from the result metrics.

Accepts a RunRecord, a record dict (``RunRecord.to_dict()``) or a result.json dict: all three
hold ``metrics``, ``env``, ``spec``, ``status`` and ``parity`` in the protocol's schema
(workloads/protocol.py). Anything missing is None, never 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from workloads.stats import percentile


@dataclass(frozen=True)
class RunSummary:
    run_id: str | None
    label: str
    workload: str
    status: str | None
    device_name: str | None
    step: str | None  # decode | prefill | ...
    latency_median_ms: float | None
    latency_mean_ms: float | None
    latency_p10_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_stdev_ms: float | None
    latency_cv_pct: float | None  # stdev / mean, in percent
    n: int | None
    tokens_per_s: float | None
    ttft_ms: float | None
    tpot_ms: float | None
    peak_mem_bytes: float | None
    achieved_tflops: float | None
    achieved_gb_s: float | None
    parity_ok: bool | None
    parity_max_rel_err: float | None
    error: str | None
    samples_ms: tuple[float, ...] = field(default_factory=tuple)


def as_record_dict(record: Any) -> dict[str, Any]:
    """A RunRecord (anything with ``to_dict``) or a dict, as a plain dict."""
    if isinstance(record, dict):
        return record
    to_dict = getattr(record, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"expected a RunRecord or a dict, got {type(record).__name__}")


def number(value: Any) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def latency_samples(record: Any) -> list[float]:
    """The per-repeat latency samples (ms) of a run, finite ones only."""
    lat = (as_record_dict(record).get("metrics") or {}).get("latency_ms") or {}
    raw = lat.get("samples") or []
    return [v for v in (number(x) for x in raw) if v is not None]


def run_summary(record: Any) -> RunSummary:
    data = as_record_dict(record)
    metrics = data.get("metrics") or {}
    lat = metrics.get("latency_ms") or {}
    env = data.get("env") or {}
    spec = data.get("spec") or {}
    parity = data.get("parity") or {}
    samples = latency_samples(data)

    median = number(lat.get("median"))
    mean = number(lat.get("mean"))
    stdev = number(lat.get("stdev"))
    n = lat.get("n") if isinstance(lat.get("n"), int) and not isinstance(lat.get("n"), bool) else None
    # Fill what the child did not write from the samples, when it wrote them.
    if samples:
        median = median if median is not None else statistics.median(samples)
        mean = mean if mean is not None else statistics.fmean(samples)
        if stdev is None and len(samples) > 1:
            stdev = statistics.stdev(samples)
        n = n if n is not None else len(samples)
    cv = stdev / mean * 100.0 if stdev is not None and mean else None

    p = {q: number(lat.get(q)) for q in ("p10", "p90", "p99")}
    if samples and len(samples) > 1:
        for q, frac in (("p10", 0.10), ("p90", 0.90), ("p99", 0.99)):
            if p[q] is None:
                p[q] = percentile(sorted(samples), frac)

    ok = parity.get("ok")
    return RunSummary(
        run_id=data.get("id"),
        label=str(data.get("label") or spec.get("label") or ""),
        workload=str(spec.get("workload") or ""),
        status=data.get("status"),
        device_name=env.get("device_name"),
        step=metrics.get("step"),
        latency_median_ms=median,
        latency_mean_ms=mean,
        latency_p10_ms=p["p10"],
        latency_p90_ms=p["p90"],
        latency_p99_ms=p["p99"],
        latency_stdev_ms=stdev,
        latency_cv_pct=cv,
        n=n,
        tokens_per_s=number(metrics.get("tokens_per_s")),
        ttft_ms=number(metrics.get("ttft_ms")),
        tpot_ms=number(metrics.get("tpot_ms")),
        peak_mem_bytes=number(metrics.get("peak_mem_bytes")),
        achieved_tflops=number(metrics.get("achieved_tflops")),
        achieved_gb_s=number(metrics.get("achieved_gb_s")),
        parity_ok=ok if isinstance(ok, bool) else None,
        parity_max_rel_err=number(parity.get("max_rel_err")),
        error=data.get("error"),
        samples_ms=tuple(samples),
    )
