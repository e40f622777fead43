"""Nsight Compute rows (from CSV or .ncu-rep) -> KernelTable + per-kernel metrics frame.

Metric values are converted to base units: bytes, nanoseconds, per-second rates in 1/s.
Derived columns (prefixed ``aiperf__``) give achieved FLOP/s and DRAM bytes/s:

- FP32: (FADD + FMUL + 2*FFMA) per elapsed cycle (summed over SMSPs) * SMSP cycles per second,
  the formula of ncu's SpeedOfLight_RooflineChart; FP64 likewise with DADD/DMUL/DFMA.
- Tensor: ``sm__ops_path_tensor_*`` op counts or rates (``--set roofline``) when present, else
  tensor-pipe instructions per cycle * 512 (ncu's HierarchicalTensorRooflineChart).

``flops`` in the KernelTable is the best known count (tensor + FP32 + FP64 where measured)
over the kernel's duration; the frame's ``aiperf__flops_source`` says what it came from.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers.kernel_table import make_kernel_table

_PREFIX = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
           "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3, "Ti": 1024.0**4}
_TIME_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
            "second": 1e9, "s": 1e9, "sec": 1e9}
_SCALED_BASES = {"byte", "bytes", "hz", "Hz", "inst", "cycle", "sector", "request", "warp",
                 "thread", "block", "wavefront", "op", "flop", "transaction"}
_UNIT_RE = re.compile(r"^(Ki|Mi|Gi|Ti|[kKMGTP])?([A-Za-z]+)$")
_FP32 = ("smsp__sass_thread_inst_executed_op_fadd_pred_on.sum.per_cycle_elapsed",
         "smsp__sass_thread_inst_executed_op_fmul_pred_on.sum.per_cycle_elapsed",
         "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum.per_cycle_elapsed")
_FP64 = tuple(m.replace("_op_f", "_op_d") for m in _FP32)
_CYCLES_PER_S = ("smsp__cycles_elapsed.avg.per_second", "sm__cycles_elapsed.avg.per_second")
_TENSOR_OPS = re.compile(r"^sm__ops_path_tensor_(\w+?)\.sum(\.per_second|\.per_cycle_elapsed)?$")
_TENSOR_INST = "smsp__inst_executed_pipe_tensor.sum.per_cycle_elapsed"


def _scale_one(unit: str) -> tuple[float, str]:
    m = _UNIT_RE.match(unit)
    if not m:
        return 1.0, unit
    prefix, base = m.group(1) or "", m.group(2)
    if base in _TIME_NS and not prefix:
        return _TIME_NS[base], "ns"
    if prefix and base in _SCALED_BASES:
        return _PREFIX[prefix], base.lower() if base in ("Hz",) else base
    return 1.0, unit


def unit_factor(unit: str) -> tuple[float, str]:
    """Multiplier taking a value in ``unit`` to base units, and the base unit's name.

    "Kbyte" -> (1e3, "byte"); "usecond" -> (1e3, "ns"); "Gbyte/second" -> (1e9, "byte/s");
    "cycle/usecond" -> (1e6, "cycle/s"); "%" and unknown units -> (1, unit).
    """
    unit = (unit or "").strip()
    if "/" not in unit:
        return _scale_one(unit)
    num, den = unit.split("/", 1)
    f_num, base_num = _scale_one(num) if num else (1.0, "")
    if base_num == "ns":  # a time numerator over something else: keep as written
        f_num, base_num = 1.0, num
    den = den.strip()
    m = _UNIT_RE.match(den)
    if den in _TIME_NS:
        return f_num * 1e9 / _TIME_NS[den], f"{base_num}/s"
    if m and m.group(1) and m.group(2) in _TIME_NS:  # e.g. "byte/Msecond": rare, be safe
        return f_num, f"{base_num}/{den}"
    return f_num, f"{base_num}/{den}"


def parse_number(text: Any) -> float:
    """ncu's number text ("16,896", "3.28", "n/a", "") -> float (NaN when not a number)."""
    if isinstance(text, bool):
        return float(text)
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str):
        return math.nan
    s = text.strip().replace(",", "")
    if not s or s.lower() in ("n/a", "nan", "-"):
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


_DIMS_SEP = re.compile(r",\s+")
_DIMS_MAX_CHARS = 64  # "(2147483647, 65535, 65535)" with separators fits many times over


def parse_dims(text: Any) -> tuple[int, int, int] | None:
    """ "(256, 1, 1)" -> (256, 1, 1); "(16,896, 1, 1)" (thousands separators) and "(1,2,3)"
    too; anything else -> None. Split, not one regex: three ``[\\d,]*`` groups around literal
    commas backtrack cubically (a 1.6 KB cell took 7 s)."""
    if not isinstance(text, str) or len(text) > _DIMS_MAX_CHARS:
        return None
    inner = text.strip()
    if inner.startswith("("):
        inner = inner[1:]
    if inner.endswith(")"):
        inner = inner[:-1]
    parts = _DIMS_SEP.split(inner.strip())
    if len(parts) == 1:
        parts = inner.split(",")
    if len(parts) != 3:
        return None
    digits = [p.strip().replace(",", "") for p in parts]
    if not all(d.isascii() and d.isdigit() for d in digits):
        return None
    return int(digits[0]), int(digits[1]), int(digits[2])


def metrics_frame(columns: dict[str, list[Any]], units: dict[str, str]) -> pd.DataFrame:
    """Raw values -> frame: numeric columns as floats in base units, text columns as text."""
    data: dict[str, Any] = {}
    base_units: dict[str, str] = {}
    for name, values in columns.items():
        nums = np.array([parse_number(v) for v in values], dtype=np.float64)
        non_empty = [v for v in values if not (isinstance(v, str) and v.strip() in ("", "n/a"))
                     and v is not None]
        if non_empty and np.isnan(nums).all():
            data[name] = pd.array([None if v is None else str(v) for v in values], dtype=object)
            continue
        factor, base = unit_factor(units.get(name, ""))
        data[name] = nums * factor if factor != 1.0 else nums
        base_units[name] = base
    frame = pd.DataFrame(data)
    frame.attrs["units"] = {k: units.get(k, "") for k in columns}
    frame.attrs["base_units"] = base_units
    return frame


def _col(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    if name in frame and frame[name].dtype == np.float64:
        return frame[name].to_numpy()
    return None


def _first_col(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray | None:
    for n in names:
        c = _col(frame, n)
        if c is not None:
            return c
    return None


def _dims_column(frame: pd.DataFrame, text_col: str, prefix: str) -> list[Any]:
    n = len(frame)
    if text_col in frame:
        dims = [parse_dims(v) for v in frame[text_col]]
        if any(d is not None for d in dims):
            return dims
    xyz = [_col(frame, f"{prefix}_{a}") for a in "xyz"]
    if all(c is not None for c in xyz):
        return [None if any(math.isnan(c[i]) for c in xyz) else  # type: ignore[index]
                tuple(int(c[i]) for c in xyz) for i in range(n)]  # type: ignore[index]
    return [None] * n


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Append achieved FLOP/s (FP32, FP64, tensor, best) and DRAM bytes/s columns."""
    n = len(frame)
    nan = np.full(n, np.nan)
    cycles = _first_col(frame, _CYCLES_PER_S)
    dur_ns = _col(frame, "gpu__time_duration.sum")
    dur_s = dur_ns * 1e-9 if dur_ns is not None else nan

    def pipe_rate(names: tuple[str, ...]) -> np.ndarray:
        cols = [_col(frame, m) for m in names]
        if cycles is None or any(c is None for c in cols):
            return nan.copy()
        return (cols[0] + cols[1] + 2.0 * cols[2]) * cycles  # type: ignore[operator]

    fp32, fp64 = pipe_rate(_FP32), pipe_rate(_FP64)
    tensor = _tensor_rate(frame, cycles, dur_s)
    parts = np.vstack([tensor, fp32, fp64])
    best = np.where(~np.isnan(parts).all(axis=0), np.nansum(parts, axis=0), np.nan)
    source = np.where(~np.isnan(tensor), "tensor+fp32",
                      np.where(~np.isnan(fp32), "fp32", np.array(None, dtype=object))).astype(object)
    # FP32 counters alone say nothing of tensor-core work: a busy tensor pipe with no tensor
    # counters means the FLOPs are unknown, not FP32's near-zero.
    busy = _tensor_pipe_busy(frame)
    unknown = np.isnan(tensor) & busy
    best = np.where(unknown, np.nan, best)
    source = np.where(unknown, "unknown (tensor pipe busy; profile with --set roofline)", source)
    dram = _first_col(frame, ("dram__bytes.sum.per_second",))
    if dram is None:
        total = _dram_bytes(frame)
        dram = total / dur_s if total is not None else nan
    out = frame.copy()
    out["aiperf__fp32_flop_per_s"] = fp32
    out["aiperf__fp64_flop_per_s"] = fp64
    out["aiperf__tensor_flop_per_s"] = tensor
    out["aiperf__flop_per_s"] = best
    out["aiperf__flops_source"] = pd.array(source, dtype=object)
    out["aiperf__dram_bytes_per_s"] = dram
    out.attrs = frame.attrs
    return out


def _tensor_rate(frame: pd.DataFrame, cycles: np.ndarray | None, dur_s: np.ndarray) -> np.ndarray:
    """Tensor-core FLOP/s from sm__ops_path_tensor_* (preferred) or tensor-pipe instructions."""
    nan = np.full(len(frame), np.nan)
    best: dict[str, tuple[int, np.ndarray]] = {}  # path -> (priority, rate)
    for name in frame.columns:
        m = _TENSOR_OPS.match(str(name))
        c = _col(frame, str(name))
        if not m or c is None:
            continue
        if m.group(2) == ".per_second":
            prio, rate = 0, c
        elif m.group(2) == ".per_cycle_elapsed":
            prio, rate = 1, (c * cycles if cycles is not None else nan)
        else:
            prio, rate = 2, c / dur_s
        if m.group(1) not in best or prio < best[m.group(1)][0]:
            best[m.group(1)] = (prio, rate)
    if any(path.startswith("src_") for path in best):
        # the per-instruction breakdown (op_hgmma_src_bf16_...) counts the same ops again
        best = {path: v for path, v in best.items() if path.startswith("src_")}
        # and a precision's aggregate (src_fp16) already holds its src_fp16_dst_* parts
        best = {path: v for path, v in best.items()
                if not ("_dst_" in path and path.split("_dst_")[0] in best)}
    if best:
        by_base: dict[str, dict[str, np.ndarray]] = {}
        for path, (_, rate) in best.items():
            base = re.sub(r"_sparsity_(on|off)$", "", path)
            by_base.setdefault(base, {})[path] = rate
        # A path and its _sparsity_on/_off halves count the same ops: never add both.
        totals = [d[b] if b in d else np.nansum(np.vstack(list(d.values())), axis=0)
                  for b, d in by_base.items()]
        stack = np.vstack(totals)
        return np.where(np.isnan(stack).all(axis=0), np.nan, np.nansum(stack, axis=0))
    inst = _col(frame, _TENSOR_INST)
    if inst is not None and cycles is not None:
        return inst * 512.0 * cycles
    return nan


def _tensor_pipe_busy(frame: pd.DataFrame) -> np.ndarray:
    busy = np.zeros(len(frame), dtype=bool)
    for name in frame.columns:
        n = str(name)
        if n.startswith(("sm__pipe_tensor_type_", "sm__pipe_tensor_op_hmma", "sm__pipe_tensor_op_gmma",
                         "sm__inst_executed_pipe_tensor")) and n.endswith(
                ".avg.pct_of_peak_sustained_elapsed"):
            c = _col(frame, n)
            if c is not None:
                busy |= np.nan_to_num(c) > 0.5
    return busy


def _dram_bytes(frame: pd.DataFrame) -> np.ndarray | None:
    r, w = _col(frame, "dram__bytes_read.sum"), _col(frame, "dram__bytes_write.sum")
    if r is not None and w is not None:
        return r + w
    return _col(frame, "dram__bytes.sum")


def build_ncu_tables(columns: dict[str, list[Any]], units: dict[str, str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(KernelTable with source "ncu", metrics frame with derived columns), same row order."""
    with np.errstate(all="ignore"):  # inf * 0 from garbage counters becomes NaN, quietly
        return _build(columns, units)


def _build(columns: dict[str, list[Any]], units: dict[str, str]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = add_derived(metrics_frame(columns, units))
    n = len(frame)
    dur = _col(frame, "gpu__time_duration.sum")
    dram = _dram_bytes(frame)
    if dram is None and dur is not None:
        dram = frame["aiperf__dram_bytes_per_s"].to_numpy() * dur * 1e-9
    flops = frame["aiperf__flop_per_s"].to_numpy() * dur * 1e-9 if dur is not None else None

    def ints(*names: str) -> Any:
        for name in names:
            c = _col(frame, name)
            if c is not None:
                return pd.array([None if math.isnan(v) or abs(v) > 2**62 else int(round(v))
                                 for v in c], dtype="Int64")
        return None

    smem = None
    st, dy = _col(frame, "launch__shared_mem_per_block_static"), _col(
        frame, "launch__shared_mem_per_block_dynamic")
    if st is not None and dy is not None:
        smem = pd.array([None if math.isnan(v) else int(v) for v in st + dy], dtype="Int64")
    names = [str(v) if v is not None else "<unnamed>"
             for v in columns.get("Kernel Name", ["<unnamed>"] * n)]
    table = make_kernel_table({
        "name": names,
        "stream": ints("Stream", "launch__stream_id"),
        "device": ints("Device", "launch__device_id"),
        "dur_ns": ints("gpu__time_duration.sum"),
        "grid": _dims_column(frame, "Grid Size", "launch__grid_dim"),
        "block": _dims_column(frame, "Block Size", "launch__block_dim"),
        "registers": ints("launch__registers_per_thread"),
        "shared_mem": smem if smem is not None else ints("launch__shared_mem_per_block"),
        "flops": pd.array(flops, dtype="Float64") if flops is not None else None,
        "dram_bytes": pd.array(dram, dtype="Float64") if dram is not None else None,
    }, source="ncu")
    return table, frame
