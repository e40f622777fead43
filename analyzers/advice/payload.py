"""What an LLM request for advice carries: structured metrics and the rule findings of one run,
nothing else. Pure: the caller passes the host names / user names to scrub.

Never in the payload: source code, logs, the environment's variables, file paths or host names
(unless ``allow_paths``); the API key is never given to this module at all. ``redact`` scrubs
every string on the way out, so a path that slipped into a finding's text or a kernel name
becomes "[path]"."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from analyzers.advice.findings import Finding

PAYLOAD_SCHEMA = 1
SYSTEM_PROMPT = (
    "You are a GPU performance engineer reviewing one profiled run of an LLM workload. You get "
    "structured measurements (JSON) and the findings of a rule engine, each with its evidence. "
    "Give at most 6 concrete, ranked suggestions. For each: what to change, the measurement in "
    "the data that motivates it (quote metric and value), the expected effect, and how to "
    "verify it with another run. Say where the data is insufficient instead of guessing. Do not "
    "repeat the rule findings verbatim; add what they miss or correct them. Be brief.")
# An absolute POSIX or Windows path, a home-relative path, or a file URL.
_PATH_RE = re.compile(r"(?:file://)?(?:~|[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")
_SAFE_ENV = ("device_name", "device_kind", "cc", "sm_count", "driver", "cuda", "torch", "num_threads")
_PATH_ENV = ("platform", "hostname", "python")


def _num(value: Any, digits: int = 4) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e15 else float(f"{value:.{digits}g}")
    return value


def _frame_rows(frame: Any, columns: list[str], limit: int) -> list[dict[str, Any]]:
    if frame is None or not len(frame):
        return []
    cols = [c for c in columns if c in frame.columns]
    rows = []
    for rec in frame[cols].head(limit).to_dict(orient="records"):
        rows.append({k: (_num(v) if not isinstance(v, str) else v) for k, v in rec.items()
                     if v is not None and not (isinstance(v, float) and v != v)})
    return rows


def _record(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    if isinstance(record, dict):
        return record
    return record.to_dict() if hasattr(record, "to_dict") else {}


def build_payload(findings: list[Finding], analysis: Any = None, record: Any = None,
                  allow_paths: bool = False, scrub: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON document sent as the user message. ``scrub``: strings (host name, user name,
    home folder) replaced by "[redacted]" wherever they occur, unless ``allow_paths``."""
    data = _record(record)
    spec = data.get("spec") or {}
    metrics = data.get("metrics") or {}
    lat = {k: _num(v) for k, v in (metrics.get("latency_ms") or {}).items() if k != "samples"}
    env = data.get("env") or {}
    payload: dict[str, Any] = {"schema": PAYLOAD_SCHEMA}
    if data:
        params = {k: _num(v) for k, v in (spec.get("params") or {}).items()
                  if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 40)}
        payload["run"] = {
            "session": data.get("id"), "status": data.get("status"),
            "workload": spec.get("workload"), "preset": spec.get("preset"),
            "layers": spec.get("layers"), "profiler": spec.get("profiler"),
            "repeat": spec.get("repeat"), "warmup": spec.get("warmup"), "params": params,
            "layers_applied": [{k: li.get(k) for k in ("name", "applied", "reason")}
                               for li in data.get("layers_applied") or []],
        }
        payload["device"] = {k: env.get(k) for k in _SAFE_ENV if env.get(k) is not None}
        if allow_paths:
            payload["device"].update({k: env.get(k) for k in _PATH_ENV if env.get(k) is not None})
            payload["artifacts"] = data.get("artifacts")
            if data.get("inputs"):
                payload["run"]["inputs"] = data.get("inputs")
        payload["metrics"] = {"latency_ms": lat, **{
            k: _num(v) for k, v in metrics.items()
            if k != "latency_ms" and (isinstance(v, (int, float)) or k == "step")}}
        payload["parity"] = {k: v for k, v in (data.get("parity") or {}).items()
                             if k in ("ok", "reference", "precision", "max_rel_err",
                                      "top1_agreement", "tolerance", "tokens_compared")}
        tel = data.get("telemetry") or {}
        payload["telemetry"] = {k: _num(v) if not isinstance(v, list) else v for k, v in tel.items()
                                if k not in ("device_name",) and not isinstance(v, dict)}
        router = (data.get("details") or {}).get("router")
        if isinstance(router, dict):
            payload["router"] = {k: _num(v) for k, v in router.items()
                                 if isinstance(v, (int, float, bool, str)) or v is None}
    if analysis is not None and getattr(analysis, "kernels", None) is not None:
        payload["analysis"] = _analysis_part(analysis)
    payload["rule_findings"] = [_finding(f) for f in findings]
    return redact(payload, allow_paths=allow_paths, scrub=scrub)


def _analysis_part(a: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"artifact_format": a.source, "device_name": a.device_name,
                            "gpu_activities": a.kernel_count,
                            "gpu_time_ms": _num((a.kernel_total_ns or 0) / 1e6)}
    part["gpu_time_by_category"] = _frame_rows(a.categories, ["category", "count", "total_ns", "share"], 12)
    part["top_kernels"] = _frame_rows(a.top_kernels, ["name", "category", "count", "total_ns",
                                                      "mean_ns", "share"], 12)
    t = a.temporal
    if t is not None:
        part["timeline"] = {
            "window_ms": _num(t.window_ns / 1e6), "idle_share": _num(t.idle_share),
            "gaps_p50_us": _num((t.gaps.p50_ns or 0) / 1e3) if t.gaps.p50_ns is not None else None,
            "short_kernel_share": _num(t.short_kernel_share),
            "memcpy_share": _num(t.memcpy_share), "sync_count": t.sync_count,
            "syncs": [{"name": s.name, "count": s.count} for s in t.syncs[:6]],
            "launch_count": t.launch_count, "host_bound": t.host_bound}
    step = a.roofline_aggregate
    if step is not None:
        part["roofline_step"] = {k: _num(getattr(step, k)) for k in (
            "achieved_flops_per_s", "achieved_bytes_per_s", "arithmetic_intensity", "pct_of_roof",
            "flops_time_coverage", "bytes_time_coverage")} | {"bound": step.bound,
                                                               "precision": step.precision}
    c = a.ceilings
    if c is not None:
        part["ceilings"] = {"source": c.source, "dram_bytes_per_s": _num(c.dram_bw),
                            "peak_flops_per_s": {k: _num(v) for k, v in c.peak_flops.items() if v}}
    return part


def _finding(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "finding": f.finding, "confidence": f.confidence,
            "action": f.action, "layer": f.layer, "expected_effect": f.expected_effect,
            "recoverable_us": _num(f.recoverable_us), "recoverable": f.recoverable,
            "evidence": [{"metric": e.metric, "value": _num(e.value), "threshold": _num(e.threshold),
                          "unit": e.unit, "source": e.source} for e in f.evidence]}


def redact(obj: Any, allow_paths: bool = False, scrub: tuple[str, ...] = ()) -> Any:
    """Every string in ``obj`` with paths -> "[path]" and ``scrub`` strings -> "[redacted]"
    (nothing changes when ``allow_paths``)."""
    if allow_paths:
        return obj
    needles = sorted({s for s in scrub if s and len(s) >= 3}, key=len, reverse=True)
    # whole words only: the user "root" is scrubbed, the kernel "root_owned_gemm" is not
    words = re.compile("|".join(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])"
                                for n in needles)) if needles else None

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            value = _PATH_RE.sub("[path]", value)  # paths first: a scrubbed name inside one
            if words is not None:  # would otherwise split it
                value = words.sub("[redacted]", value)
            return value
        if isinstance(value, dict):
            return {str(clean(k)): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(obj)


def build_request(payload: dict[str, Any], model: str, max_tokens: int = 1500) -> dict[str, Any]:
    """The Messages API request body (what the SDK sends, less the headers it adds)."""
    return {"model": model, "max_tokens": max_tokens, "system": SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": [{"type": "text", "text":
                         "Measurements and rule findings of one run:\n"
                         + json.dumps(payload, indent=1, sort_keys=False, default=str)}]}]}
