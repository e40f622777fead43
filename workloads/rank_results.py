"""Per-rank results of a torchrun run, merged into one result.json. Pure Python (no torch): the
child's rank 0 calls it on the gathered results, and the parent (``profilers.torchrun``) calls
it on the ``result-rank<k>.json`` files when rank 0 could not (a rank died mid-run).

The merged result is rank 0's (its metrics are the run's headline: the ranks step in lock-step
through the collectives), with ``details.distributed`` listing every rank's status and latency,
and status ``ok`` only when every rank finished ok.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RANK_RESULT = "result-rank{rank}.json"
RANK_TRACE = "trace-rank{rank}.json.gz"
TRACES_DIR = "traces"  # per-rank traces: the session's "trace" artifact is this folder


def rank_summary(rank: int, result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"rank": rank, "status": "missing", "error": "the rank wrote no result",
                "latency_median_ms": None, "samples_ms": None, "peak_mem_bytes": None}
    metrics = result.get("metrics") or {}
    latency = metrics.get("latency_ms") or {}
    dist = (result.get("details") or {}).get("distributed") or {}
    return {"rank": rank, "status": result.get("status"), "error": result.get("error"),
            "latency_median_ms": latency.get("median"), "samples_ms": latency.get("samples"),
            "peak_mem_bytes": metrics.get("peak_mem_bytes"),
            "device": (result.get("env") or {}).get("device_name"),
            "dispatch": dist.get("dispatch")}


def merge_rank_results(results: list[dict[str, Any] | None], world_size: int | None = None,
                       backend: str | None = None) -> dict[str, Any]:
    """One result dict from the ranks' (index = rank; None where a rank wrote nothing)."""
    world = world_size or len(results)
    results = list(results) + [None] * (world - len(results))
    ranks = [rank_summary(index, result) for index, result in enumerate(results)]
    base = next((r for r in results if r is not None), None)
    merged: dict[str, Any] = json.loads(json.dumps(results[0] if results[0] is not None
                                                   else base or {}))
    merged.setdefault("details", {})
    merged.setdefault("metrics", {})
    first_bad = next((r for r in ranks if r["status"] != "ok"), None)
    if first_bad is not None:
        merged["status"] = "failed" if first_bad["status"] != "cancelled" else "cancelled"
        error = first_bad["error"] or first_bad["status"]
        merged["error"] = f"rank {first_bad['rank']}: {error}"
    dist = dict((merged["details"] or {}).get("distributed") or {})
    dist.update({"world_size": world, "ranks": ranks})
    if backend and not dist.get("backend"):
        dist["backend"] = backend
    medians = [r["latency_median_ms"] for r in ranks if r["latency_median_ms"] is not None]
    if len(medians) == world and world > 1:
        dist["latency_spread_pct"] = (max(medians) - min(medians)) / min(medians) * 100 \
            if min(medians) > 0 else None
        dist["slowest_rank"] = max(ranks, key=lambda r: r["latency_median_ms"])["rank"]
    merged["details"]["distributed"] = dist
    return merged


def merge_rank_files(run_dir: Path, world_size: int) -> dict[str, Any] | None:
    """Merge the ``result-rank<k>.json`` files in ``run_dir``; None when there are none."""
    results: list[dict[str, Any] | None] = []
    for rank in range(world_size):
        path = run_dir / RANK_RESULT.format(rank=rank)
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            results.append(None)
    if all(r is None for r in results):
        return None
    return merge_rank_results(results, world_size)
