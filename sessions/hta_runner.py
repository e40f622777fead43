"""Run Holistic Trace Analysis (HTA, holistictraceanalysis) on Kineto traces, where installed.

HTA wants a trace *directory* with one file per rank, each naming its rank in
``distributedInfo``; we symlink the given files into a temp folder (``rank-<i>.json[.gz]``).
Its numbers go into ``HtaResult`` as DataFrames; analyzers.hta_compare puts them next to ours.
I/O only: HTA's logging is silenced and each analysis that fails is recorded, never fatal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workloads.errors import WorkbenchError


@dataclass
class HtaResult:
    version: str | None
    ranks: list[int]
    temporal: pd.DataFrame | None = None  # rank, idle/compute/non_compute/kernel_time(us), pctg
    idle: pd.DataFrame | None = None  # rank, stream, idle_category, idle_time, idle_time_ratio
    launch_stats: pd.DataFrame | None = None  # rank, correlation, cpu/gpu_duration, launch_delay (us)
    kernel_types: pd.DataFrame | None = None  # kernel_type, sum, percentage
    kernels: pd.DataFrame | None = None  # name, sum (us), ..., kernel_type, rank
    overlap: pd.DataFrame | None = None  # rank, comp_comm_overlap_pctg (multi-rank only)
    seconds: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def hta_available() -> bool:
    return importlib.util.find_spec("hta") is not None


def hta_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("HolisticTraceAnalysis")
    except Exception:
        return None


def _trace_files(paths: list[Path]) -> list[Path]:
    from profilers.parsers.kineto import trace_files

    files: list[Path] = []
    for p in paths:
        files += trace_files(p) if p.is_dir() else [p]
    return files


def _declared_rank(path: Path) -> int | None:
    """The rank a trace names in distributedInfo (read from its first 64 KiB), or None."""
    from profilers.parsers._io import open_maybe_gzip

    with open_maybe_gzip(path) as fh:
        head = fh.read(1 << 16).decode("utf-8", "replace")
    at = head.find('"distributedInfo"')
    if at < 0:
        return None
    start = head.find("{", at)
    end = head.find("}", start)
    try:
        rank = json.loads(head[start: end + 1]).get("rank")
    except (ValueError, AttributeError):
        return None
    return rank if isinstance(rank, int) else None


def stage_trace_dir(paths: list[Path], into: Path) -> list[int]:
    """Symlink the traces into ``into`` under HTA's per-rank naming; returns the ranks."""
    files = _trace_files(paths)
    if not files:
        raise WorkbenchError("--hta: no Kineto trace among the inputs",
                             "HTA reads torch.profiler traces (.json / .json.gz)")
    ranks = [_declared_rank(f) for f in files]
    if len(files) > 1 and (None in ranks or len(set(ranks)) != len(ranks)):
        raise WorkbenchError("--hta: per-rank traces must each name a unique rank "
                             "(distributedInfo.rank)", "HTA cannot tell the ranks apart otherwise")
    for i, f in enumerate(files):
        with open(f, "rb") as fh:
            suffix = ".json.gz" if fh.read(2) == b"\x1f\x8b" else ".json"
        (into / f"rank-{i}{suffix}").symlink_to(f.resolve())
    return [r if r is not None else 0 for r in ranks]


def _quiet_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def run_hta(paths: list[Path]) -> HtaResult:
    """HTA's temporal and idle-time breakdowns, launch statistics, kernel breakdown and
    (several ranks) communication/computation overlap for the traces in ``paths``."""
    if not hta_available():
        raise WorkbenchError("--hta: holistictraceanalysis is not installed",
                             "pip install HolisticTraceAnalysis")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # HTA logs every parse step at INFO/WARNING
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="aiperf-hta-") as tmp:
            ranks = stage_trace_dir([Path(p) for p in paths], Path(tmp))
            from hta.trace_analysis import TraceAnalysis

            analysis = _quiet_call(TraceAnalysis, trace_dir=tmp)
            result = HtaResult(version=hta_version(), ranks=ranks)
            _collect(analysis, result)
    finally:
        logging.disable(previous)
    result.seconds = time.perf_counter() - start
    return result


def _collect(analysis: Any, result: HtaResult) -> None:
    def attempt(key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return _quiet_call(fn, visualize=False, **kwargs)
        except Exception as exc:  # HTA asserts on traces it does not expect: record, go on
            result.errors[key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            return None

    result.temporal = attempt("temporal", analysis.get_temporal_breakdown)
    idle = attempt("idle", analysis.get_idle_time_breakdown)
    result.idle = idle[0] if isinstance(idle, tuple) else idle
    stats = attempt("launch_stats", analysis.get_cuda_kernel_launch_stats)
    if isinstance(stats, dict) and stats:
        result.launch_stats = pd.concat(
            [frame.assign(rank=rank) for rank, frame in stats.items()], ignore_index=True)
    # Every kernel by name (HTA's default keeps the top 10 / 80% and folds the rest in "others").
    kernels = attempt("kernel_breakdown", analysis.get_gpu_kernel_breakdown,
                      duration_ratio=1.0, num_kernels=1_000_000)
    if isinstance(kernels, tuple) and len(kernels) == 2:
        result.kernel_types, result.kernels = kernels
    if len(result.ranks) > 1:
        result.overlap = attempt("overlap", analysis.get_comm_comp_overlap)
    else:
        result.notes.append("communication/computation overlap needs several ranks: not computed")
