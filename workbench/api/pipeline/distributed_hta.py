"""HTA's communication/computation overlap beside ours, for multi-rank GPU traces, where
holistictraceanalysis is installed (it is optional: the GPU box does not have it). I/O only."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def attach_hta_overlap(analysis: Any, trace_path: Path) -> Any:
    """Fill ``analysis.distributed.hta`` ({rank: overlap %}) or add a note saying why not."""
    dist = getattr(analysis, "distributed", None)
    if dist is None or dist.source != "gpu kernels" or not trace_path.is_dir():
        return analysis
    from workbench.api.pipeline.hta_runner import failed_to_build, hta_available, run_hta

    if not hta_available():
        dist.notes.append("HTA (holistictraceanalysis) not installed: overlap is ours only")
        return analysis
    try:
        result = run_hta(sorted(p for p in trace_path.iterdir() if p.is_file()))
    except Exception as exc:  # HTA is a cross-check, never a reason to fail a report
        dist.notes.append(f"HTA overlap failed: {type(exc).__name__}: {exc}"[:200])
        return analysis
    if failed_to_build(result):
        error = next(iter(result.errors.values()))
        dist.notes.append(f"HTA {result.version} (pandas {result.pandas_version}) failed: "
                          f"{error}"[:300] + "; overlap is ours only")
        return analysis
    frame = result.overlap
    if frame is None or not len(frame):
        dist.notes.append("HTA computed no overlap: "
                          + (result.errors.get("overlap") or "no result"))
        return analysis
    dist.hta = {int(row["rank"]): float(row["comp_comm_overlap_pctg"])
                for _, row in frame.iterrows()}
    return analysis
