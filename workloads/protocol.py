"""The child -> parent protocol: JSON-lines progress events on stdout, and result.json.

Each event is one line ``@@aiperf {json}`` on stdout (the marker keeps them apart from anything
the workload itself prints). Events:

  {"event": "phase", "phase": "build|reference|warmup|measure|profile|parity|write", "message": str}
  {"event": "step", "phase": "warmup|measure|profile", "i": int, "n": int}
  {"event": "metric", "name": str, "value": float, "unit": str}      (optional, live figures)
  {"event": "done", "status": "ok|failed", "error": str|None}

result.json (written atomically by the child into --out DIR):

  status: "ok" | "failed"; error: str | null; error_type: str | null
  spec: the spec as run
  env: {device_name, device_kind ("cuda"|"cpu"), cc, driver, cuda, torch, python, platform,
        num_threads, sm_count}
  metrics: {latency_ms: {median, mean, p10, p90, p99, stdev, min, max, n, samples: [...]},
            step: "decode"|"prefill"|..., tokens_per_step, tokens_per_s, prefill_ms,
            prefill_tokens_per_s, ttft_ms, tpot_ms, peak_mem_bytes, flops_per_step,
            bytes_per_step, achieved_tflops, achieved_gb_s}   (missing = null, never 0)
  parity: {reference: "L0", max_rel_err, top1_agreement, tolerance, ok, tokens_compared}
  layers_applied: [{name, applied: bool, reason: str|null}]
  artifacts: {"trace": "trace.json.gz", ...}  relative to --out
  details: the workload's own report (shape, router health, acceptance rate, ...)
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKER = "@@aiperf "


def emit(event: str, **fields: Any) -> None:
    """Print one progress event line (flushed: the parent reads it live)."""
    sys.stdout.write(MARKER + json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def parse_event(line: str) -> dict[str, Any] | None:
    """The event on a stdout line, or None for ordinary output."""
    if not line.startswith(MARKER):
        return None
    try:
        obj = json.loads(line[len(MARKER):])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None
