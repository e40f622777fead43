"""Run Holistic Trace Analysis (HTA, holistictraceanalysis) on Kineto traces, where installed.

HTA wants a trace *directory* with one file per rank, each naming its rank in
``distributedInfo``; we symlink the given files into a temp folder (``rank-<i>.json[.gz]``).
Its numbers go into ``HtaResult`` as DataFrames; analyzers.hta_compare puts them next to ours.
I/O only: HTA's logging is silenced and any failure — HTA missing, a trace it cannot stage, its
TraceAnalysis failing to build (HTA <= 0.6 does under pandas 3 on some traces), one analysis
failing — is recorded in ``errors`` with the HTA and pandas versions, never raised: ``--hta``
is a cross-check and must not cost the user our own analysis.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import re
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
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
    # rank -> {ProfilerStep number -> start ns}, read from the traces (HTA drops the last step)
    step_starts_ns: dict[int, dict[int, int]] = field(default_factory=dict)
    pandas_version: str | None = None
    seconds: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def failed_to_build(result: HtaResult) -> bool:
    """True when HTA produced nothing at all (not installed, inputs not staged, or its
    TraceAnalysis failed to build)."""
    return bool({"hta", "staging", "trace_analysis"} & set(result.errors))


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


def _where_in_hta(exc: BaseException) -> str:
    """The innermost frame of HTA's own code in the traceback, as ``file:line function``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/hta/" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" (in hta/{f.filename.split('/hta/', 1)[1]}:{f.lineno} {f.name})"


def _failure(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return re.sub(r"\s+", " ", text)[:200] + _where_in_hta(exc)


_STEP = re.compile(rb'"name":\s*"ProfilerStep\s*#\s*(\d+)"[^{}]*?"ts":\s*(-?[0-9][0-9.eE+-]*)')


def profiler_step_starts(path: Path) -> dict[int, int]:
    """{ProfilerStep number -> start ns} of one Kineto trace, read by a byte scan (events
    written by torch name the step before its ts); empty when the trace has none."""
    from profilers.parsers._io import open_maybe_gzip

    steps: dict[int, int] = {}
    tail = b""
    with open_maybe_gzip(path) as fh:
        while chunk := fh.read(16 << 20):
            buf = tail + chunk
            if b"ProfilerStep" in buf:
                for m in _STEP.finditer(buf):
                    try:
                        steps[int(m.group(1))] = int((Decimal(m.group(2).decode()) * 1000)
                                                     .to_integral_value())
                    except (InvalidOperation, ValueError):
                        continue
            tail = buf[-4096:]  # an event split across chunks is found in the next pass
    return steps


def run_hta(paths: list[Path]) -> HtaResult:
    """HTA's temporal and idle-time breakdowns, launch statistics, kernel breakdown and
    (several ranks) communication/computation overlap for the traces in ``paths``. Never
    raises for HTA's sake: what failed is in ``errors`` (see module docstring)."""
    result = HtaResult(version=hta_version(), ranks=[], pandas_version=pd.__version__)
    if not hta_available():
        result.errors["hta"] = "holistictraceanalysis is not installed (pip install HolisticTraceAnalysis)"
        return result
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # HTA logs every parse step at INFO/WARNING
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="aiperf-hta-") as tmp:
            try:
                files = _trace_files([Path(p) for p in paths])
                result.ranks = stage_trace_dir(files, Path(tmp))
            except WorkbenchError as exc:
                result.errors["staging"] = exc.message + (f" ({exc.hint})" if exc.hint else "")
                return result
            for rank, f in zip(result.ranks, files, strict=True):
                try:
                    result.step_starts_ns[rank] = profiler_step_starts(f)
                except (OSError, EOFError, ValueError, WorkbenchError):
                    result.step_starts_ns.pop(rank, None)
            try:
                from hta.trace_analysis import TraceAnalysis

                analysis = _quiet_call(TraceAnalysis, trace_dir=tmp)
            except Exception as exc:  # HTA's own failure: a note beside our analysis
                result.errors["trace_analysis"] = _failure(exc)
                return result
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
            result.errors[key] = _failure(exc)
            return None

    # HTA's idle breakdown and launch statistics default to the first rank only; ask for all,
    # as its temporal and kernel breakdowns (and ours) cover every rank.
    try:
        every_rank = {"ranks": sorted(analysis.t.traces)}
    except AttributeError:
        every_rank = {}
    result.temporal = attempt("temporal", analysis.get_temporal_breakdown)
    idle = attempt("idle", analysis.get_idle_time_breakdown, **every_rank)
    result.idle = idle[0] if isinstance(idle, tuple) else idle
    stats = attempt("launch_stats", analysis.get_cuda_kernel_launch_stats, **every_rank)
    if isinstance(stats, dict) and stats:
        result.launch_stats = pd.concat(
            [frame.assign(rank=rank) for rank, frame in stats.items()], ignore_index=True)
    # Every kernel by name (HTA's default keeps the top 10 / 80% and folds the rest in "others").
    kernels = attempt("kernel_breakdown", analysis.get_gpu_kernel_breakdown,
                      duration_ratio=1.0, num_kernels=1_000_000, include_memory_kernels=True)
    if isinstance(kernels, tuple) and len(kernels) == 2:
        result.kernel_types, result.kernels = kernels
    if len(result.ranks) > 1:
        result.overlap = attempt("overlap", analysis.get_comm_comp_overlap)
    else:
        result.notes.append("communication/computation overlap needs several ranks: not computed")
