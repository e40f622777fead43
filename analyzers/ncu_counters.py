"""What Nsight Compute's per-launch counters say about each kernel's work, as numpy columns.

Read from the ncu parser's per-kernel metric frame (raw metric names, base units), aligned
with the KernelTable's rows: DRAM bytes (``dram__bytes.sum``, or read + write, or the rate x
duration), FP32 FLOPs (FADD + FMUL + 2 x FFMA, counts or per-cycle rates x clock x duration),
tensor op counts per precision (``sm__ops_path_tensor_*``, ``--set roofline``), whether a launch
used the tensor pipe at all, and the tensor-pipe utilization. Missing is NaN, never 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# sm__ops_path_tensor_src_<prec>[_dst_<prec>][_sparsity_on|off].sum[.per_cycle_elapsed]: a
# full report (.ncu-rep) carries the count AND the per-cycle rate of the same path, and for
# some precisions an aggregate beside its split halves: each op must be counted once.
_TENSOR_OPS_RE = re.compile(r"^sm__ops_path_tensor_src_([a-z0-9]+)((?:_dst_[a-z0-9]+)?)"
                            r"((?:_sparsity_(?:on|off))?)\.sum(\.per_cycle_elapsed)?$")
_TENSOR_SIGNAL_RE = re.compile(r"^(sm__pipe_tensor_type_|sm__pipe_tensor_op_hmma|sm__pipe_tensor_op_gmma|"
                               r"sm__inst_executed_pipe_tensor|sm__ops_path_tensor_)")
_PIPE_UTIL = (
    "sm__pipe_tensor_type_hmma_hgmma_qgmma_imma_igmma_bmma_bgmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed",
)
_GENERIC_TENSOR_PIPE = "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed"
_OPS_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "tf32": "tf32"}


@dataclass
class NcuCounters:
    """Per-launch arrays (NaN where the counter is absent); None where no column exists."""

    dur_ns: np.ndarray | None  # gpu__time_duration.sum
    dram_bytes: np.ndarray  # all NaN without DRAM counters
    fp32_flops: np.ndarray | None
    tensor_ops: dict[str, np.ndarray] = field(default_factory=dict)  # precision -> op count
    tensor_signal: np.ndarray | None = None  # the launch used the tensor pipe
    pipe_util: np.ndarray | None = None  # tensor-pipe utilization, percent
    sm_clock: np.ndarray | None = None  # Hz


def metric(metrics: pd.DataFrame | None, name: str) -> np.ndarray | None:
    if metrics is None or name not in metrics.columns:
        return None
    return pd.to_numeric(metrics[name], errors="coerce").to_numpy(dtype="float64")


def tensor_op_counts(metrics: pd.DataFrame, sm_clock: np.ndarray | None,
                     secs: np.ndarray) -> dict[str, np.ndarray]:
    """Tensor ops per precision from sm__ops_path_tensor_src_*, each op counted once: a path's
    count is preferred to its per-cycle rate (x SM clock x duration); a precision's aggregate
    (``src_fp16``) to its ``_dst_*`` parts; a path to its ``_sparsity_on/off`` halves."""
    paths: dict[tuple[str, str, str], tuple[int, np.ndarray]] = {}
    for col in metrics.columns:
        match = _TENSOR_OPS_RE.match(str(col))
        if not match or match.group(1) not in _OPS_PRECISION:
            continue
        values = metric(metrics, str(col))
        if values is None:
            continue
        src, dst, sparsity, per_cycle = match.groups()
        if per_cycle:
            values = values * (sm_clock if sm_clock is not None else np.nan) * secs
        priority = 1 if per_cycle else 0
        key = (src, dst, sparsity)
        if key not in paths or priority < paths[key][0]:
            paths[key] = (priority, values)
    counts: dict[str, np.ndarray] = {}
    for src in sorted({key[0] for key in paths}):
        mine = {key[1:]: values for key, (_, values) in paths.items() if key[0] == src}
        if ("", "") in mine:
            chosen = [mine[("", "")]]
        else:
            dsts = sorted({dst for dst, _ in mine})
            chosen = []
            for dst in dsts:
                if (dst, "") in mine:
                    chosen.append(mine[(dst, "")])
                else:
                    chosen += [v for (d, sp), v in mine.items() if d == dst and sp]
        stack = np.vstack(chosen)
        total = np.where(np.isnan(stack).all(axis=0), np.nan, np.nansum(stack, axis=0))
        prec = _OPS_PRECISION[src]
        counts[prec] = total if prec not in counts else np.nansum([counts[prec], total], axis=0)
    return counts


def read_counters(metrics: pd.DataFrame, dur_ns: np.ndarray) -> NcuCounters:
    """The counters of every launch; ``dur_ns`` (the table's) where ncu lacks the duration."""
    n = len(metrics)
    m_dur = metric(metrics, "gpu__time_duration.sum")
    dur = dur_ns if m_dur is None else np.where(np.isnan(m_dur), dur_ns, m_dur)
    secs = dur * 1e-9

    nbytes = np.full(n, np.nan)
    total = metric(metrics, "dram__bytes.sum")
    rd, wr = metric(metrics, "dram__bytes_read.sum"), metric(metrics, "dram__bytes_write.sum")
    rate = metric(metrics, "dram__bytes.sum.per_second")
    if total is not None:
        nbytes = total
    elif rd is not None and wr is not None:
        nbytes = rd + wr
    elif rate is not None:
        nbytes = rate * secs

    clock = metric(metrics, "smsp__cycles_elapsed.avg.per_second")
    sm_clock = metric(metrics, "sm__cycles_elapsed.avg.per_second")
    parts = []
    for op, weight in (("fadd", 1.0), ("fmul", 1.0), ("ffma", 2.0)):
        base = f"smsp__sass_thread_inst_executed_op_{op}_pred_on.sum"
        count = metric(metrics, base)
        per_cycle = metric(metrics, base + ".per_cycle_elapsed")
        if count is None and per_cycle is not None and clock is not None:
            count = per_cycle * clock * secs
        if count is not None:
            parts.append(weight * count)
    fp32 = np.sum(parts, axis=0) if len(parts) == 3 else None

    tensor_ops = tensor_op_counts(metrics, sm_clock, secs)
    signal = np.zeros(n, dtype=bool)
    if tensor_ops:  # the op counters were collected: they say which kernels ran tensor ops
        signal = np.nansum(np.vstack(list(tensor_ops.values())), axis=0) > 0
    else:
        for col in metrics.columns:
            col = str(col)
            if (not _TENSOR_SIGNAL_RE.match(col) or "dmma" in col or "fp64" in col
                    or "peak_sustained" in col.replace("pct_of_peak_sustained", "")):
                continue  # a .peak_sustained is the device's peak, not what the kernel did
            signal_values = metric(metrics, col)
            if signal_values is not None:
                signal |= np.nan_to_num(signal_values) > 0
        generic = metric(metrics, _GENERIC_TENSOR_PIPE)
        if generic is not None:
            signal |= np.nan_to_num(generic) > 10.0  # low values are the shared pipe, not MMA
    pipe_util = next((u for u in (metric(metrics, c) for c in _PIPE_UTIL) if u is not None), None)
    if pipe_util is None:
        pipe_util = metric(metrics, _GENERIC_TENSOR_PIPE)
    return NcuCounters(dur_ns=m_dur, dram_bytes=nbytes, fp32_flops=fp32, tensor_ops=tensor_ops,
                       tensor_signal=signal, pipe_util=pipe_util, sm_clock=sm_clock)
