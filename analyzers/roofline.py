"""Roofline placement of each kernel and of the whole step.

Per kernel: arithmetic intensity (FLOP / DRAM byte), achieved FLOP/s and B/s, the bounding
roof min(peak, AI * bandwidth), the percentage of that roof reached, and whether the kernel sits
left (memory) or right (compute) of the ridge point.

Where the numbers come from (each point says so in ``source`` and ``flops_method``):
- ncu metrics (the ncu parser's per-kernel frame, raw metric names, base units): DRAM bytes from
  ``dram__bytes.sum`` (or read + write, or ``dram__bytes.sum.per_second`` * duration); FP32
  FLOPs = FADD + FMUL + 2 * FFMA; tensor FLOPs from ``sm__ops_path_tensor_*`` (``--set
  roofline``). The default SpeedOfLight_RooflineChart counts FP32 only, so a GEMM there shows
  ~0 FLOPs: tensor kernels are never placed on the FP32 roof nor given the FP32 count. Without
  tensor op counters their FLOPs come from ``kernel_table.flops`` when the caller filled it from
  op shapes (analyzers.op_flops), else are estimated from tensor-pipe utilization * peak at the
  measured SM clock (``source="estimate"``), else stay unknown with a note.
- torch profiler: ``kernel_table.flops`` (with_flops) and ``dram_bytes`` (a bytes estimate),
  labelled ``source="estimate"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers.ceilings import Ceilings, spec_ceilings

TENSOR_CATEGORIES = ("gemm", "attention")
_FP8_RE = re.compile(r"e4m3|e5m2|fp8|float8|qgmma|_f8", re.I)
_TF32_RE = re.compile(r"tf32|xf32", re.I)
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


@dataclass(frozen=True)
class RooflinePoint:
    name: str
    category: str | None
    source: str  # ncu | estimate
    roof: str  # tensor | fp32
    precision: str  # bf16 | fp16 | fp8 | tf32 | fp32
    dur_ns: float | None
    flops: float | None
    dram_bytes: float | None
    arithmetic_intensity: float | None  # FLOP/B
    achieved_flops_per_s: float | None
    achieved_bytes_per_s: float | None
    peak_flops_per_s: float | None
    roof_flops_per_s: float | None  # min(peak, AI * bw)
    pct_of_roof: float | None  # percent
    bound: str | None  # memory | compute
    flops_method: str  # ncu tensor ops | ncu fp32 fadd/fmul/ffma | op shapes | ...
    note: str | None = None


@dataclass(frozen=True)
class StepPlacement:
    """The whole step as one point: total FLOPs / total time, total bytes / total time."""

    time_ns: float
    flops: float | None
    dram_bytes: float | None
    flops_time_coverage: float | None  # share of kernel time whose FLOPs are known
    bytes_time_coverage: float | None
    precision: str
    arithmetic_intensity: float | None
    achieved_flops_per_s: float | None
    achieved_bytes_per_s: float | None
    roof_flops_per_s: float | None
    pct_of_roof: float | None
    bound: str | None


@dataclass(frozen=True)
class Roofline:
    ceilings: Ceilings
    points: list[RooflinePoint]
    step: StepPlacement
    notes: list[str] = field(default_factory=list)


def _metric(metrics: pd.DataFrame | None, name: str) -> np.ndarray | None:
    if metrics is None or name not in metrics.columns:
        return None
    return pd.to_numeric(metrics[name], errors="coerce").to_numpy(dtype="float64")


def _tensor_op_counts(metrics: pd.DataFrame, sm_clock: np.ndarray | None,
                      secs: np.ndarray) -> dict[str, np.ndarray]:
    """Tensor ops per precision from sm__ops_path_tensor_src_*, each op counted once: a path's
    count is preferred to its per-cycle rate (x SM clock x duration); a precision's aggregate
    (``src_fp16``) to its ``_dst_*`` parts; a path to its ``_sparsity_on/off`` halves."""
    paths: dict[tuple[str, str, str], tuple[int, np.ndarray]] = {}
    for col in metrics.columns:
        match = _TENSOR_OPS_RE.match(str(col))
        if not match or match.group(1) not in _OPS_PRECISION:
            continue
        values = _metric(metrics, str(col))
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


def _name_precision(name: str) -> str | None:
    if _FP8_RE.search(name):
        return "fp8"
    if _TF32_RE.search(name):
        return "tf32"
    return None


def _is_fp32_count(value: float, fp32: np.ndarray | None, i: int) -> bool:
    """True when a kernel-table FLOP figure is just the FP32 counter sum (what an ncu table may
    carry): for a tensor kernel that number is wrong by orders of magnitude."""
    if fp32 is None or fp32[i] != fp32[i]:
        return False
    return abs(value - fp32[i]) <= 0.01 * max(abs(value), abs(fp32[i]), 1.0)


def _opt(value: float) -> float | None:
    return None if value != value else float(value)


def _place(flops: float | None, nbytes: float | None, dur_ns: float | None, peak: float | None,
           bw: float | None, ridge: float | None) -> dict[str, float | str | None]:
    secs = dur_ns * 1e-9 if dur_ns else None
    ai = flops / nbytes if flops is not None and nbytes else None
    fps = flops / secs if flops is not None and secs else None
    bps = nbytes / secs if nbytes is not None and secs else None
    roof = min(peak, ai * bw) if ai is not None and peak and bw else None
    bound = None if ai is None or ridge is None else ("memory" if ai < ridge else "compute")
    pct = None
    if bound == "memory" and bps is not None and bw:
        pct = bps / bw * 100.0  # (F/t) / (AI * bw) == (B/t) / bw, defined even when F == 0
    elif bound == "compute" and fps is not None and peak:
        pct = fps / peak * 100.0
    elif bound is None and fps is not None and peak:
        pct = fps / peak * 100.0  # bytes unknown: against the compute roof
    def f(x: float | None) -> float | None:
        return None if x is None else float(x)

    return {"arithmetic_intensity": f(ai), "achieved_flops_per_s": f(fps),
            "achieved_bytes_per_s": f(bps), "roof_flops_per_s": f(roof), "pct_of_roof": f(pct),
            "bound": bound}


def roofline(kt: pd.DataFrame, ceilings: Ceilings, metrics: pd.DataFrame | None = None,
             precision: str | None = None, step_time_ns: float | None = None) -> Roofline:
    """Place every kernel of ``kt`` (rows aligned with ``metrics`` when given) on ``ceilings``.

    ``precision``: the tensor precision when known (e.g. the spec's dtype); otherwise taken from
    tensor op counters or the kernel name, defaulting to bf16 (noted on the point).
    ``step_time_ns``: wall time of the step for the aggregate (default: sum of kernel time).
    """
    n = len(kt)
    if metrics is not None and len(metrics) != n:
        raise ValueError("metrics rows must align with the kernel table rows")
    notes: list[str] = []
    names = kt["name"].astype("object").astype(str).to_numpy()
    cats = kt["category"].astype("object").to_numpy()
    dur = kt["dur_ns"].to_numpy(dtype="float64", na_value=np.nan)
    kt_flops = kt["flops"].to_numpy(dtype="float64", na_value=np.nan)
    kt_bytes = kt["dram_bytes"].to_numpy(dtype="float64", na_value=np.nan)

    m_dur = _metric(metrics, "gpu__time_duration.sum")
    if m_dur is not None:
        dur = np.where(np.isnan(m_dur), dur, m_dur)
    secs = dur * 1e-9

    # DRAM bytes.
    nbytes = np.full(n, np.nan)
    if metrics is not None:
        total = _metric(metrics, "dram__bytes.sum")
        rd, wr = _metric(metrics, "dram__bytes_read.sum"), _metric(metrics, "dram__bytes_write.sum")
        rate = _metric(metrics, "dram__bytes.sum.per_second")
        if total is not None:
            nbytes = total
        elif rd is not None and wr is not None:
            nbytes = rd + wr
        elif rate is not None:
            nbytes = rate * secs
    bytes_from_ncu = ~np.isnan(nbytes)
    nbytes = np.where(bytes_from_ncu, nbytes, kt_bytes)

    # FP32 FLOPs from the SASS counters (count, or rate per cycle * cycles).
    clock = _metric(metrics, "smsp__cycles_elapsed.avg.per_second")
    sm_clock = _metric(metrics, "sm__cycles_elapsed.avg.per_second")
    fp32 = None
    if metrics is not None:
        parts = []
        for op, weight in (("fadd", 1.0), ("fmul", 1.0), ("ffma", 2.0)):
            base = f"smsp__sass_thread_inst_executed_op_{op}_pred_on.sum"
            count = _metric(metrics, base)
            per_cycle = _metric(metrics, base + ".per_cycle_elapsed")
            if count is None and per_cycle is not None and clock is not None:
                count = per_cycle * clock * secs
            if count is not None:
                parts.append(weight * count)
        fp32 = np.sum(parts, axis=0) if len(parts) == 3 else None

    # Tensor op counters, per precision.
    tensor_ops = _tensor_op_counts(metrics, sm_clock, secs) if metrics is not None else {}
    signal = np.zeros(n, dtype=bool)
    if tensor_ops:  # the op counters were collected: they say which kernels ran tensor ops
        signal = np.nansum(np.vstack(list(tensor_ops.values())), axis=0) > 0
    elif metrics is not None:
        for col in metrics.columns:
            if (not _TENSOR_SIGNAL_RE.match(col) or "dmma" in col or "fp64" in col
                    or "peak_sustained" in col.replace("pct_of_peak_sustained", "")):
                continue  # a .peak_sustained is the device's peak, not what the kernel did
            signal_values = _metric(metrics, col)
            if signal_values is not None:
                signal |= np.nan_to_num(signal_values) > 0
        generic = _metric(metrics, _GENERIC_TENSOR_PIPE)
        if generic is not None:
            signal |= np.nan_to_num(generic) > 10.0  # low values are the shared pipe, not MMA
    pipe_util = next((u for u in (_metric(metrics, c) for c in _PIPE_UTIL) if u is not None), None)
    if pipe_util is None:
        pipe_util = _metric(metrics, _GENERIC_TENSOR_PIPE)
    issue_rates = spec_ceilings(ceilings.device_name) or ceilings

    points: list[RooflinePoint] = []
    for i in range(n):
        tensor = cats[i] in TENSOR_CATEGORIES or bool(signal[i])
        d = _opt(dur[i])
        b = _opt(nbytes[i])
        note = None
        from_ncu = metrics is not None
        if tensor:
            counted = {p: v[i] for p, v in tensor_ops.items() if v[i] == v[i] and v[i] > 0}
            prec = precision or (max(counted, key=lambda k: counted[k]) if counted else None)
            prec = prec or _name_precision(names[i]) or "bf16"
            guessed = precision is None and not counted and _name_precision(names[i]) is None
            if counted:
                flops, method, source = float(sum(counted.values())), "ncu tensor ops", "ncu"
            elif kt_flops[i] == kt_flops[i] and not _is_fp32_count(kt_flops[i], fp32, i):
                flops, method, source = float(kt_flops[i]), "op shapes / with_flops", "estimate"
            elif (pipe_util is not None and pipe_util[i] == pipe_util[i] and sm_clock is not None
                  and issue_rates.peak(prec) and issue_rates.tensor_clock_hz and d):
                flops = (pipe_util[i] / 100.0 * issue_rates.peak(prec)
                         * sm_clock[i] / issue_rates.tensor_clock_hz * secs[i])
                method, source = "tensor pipe utilization", "estimate"
                note = ("no tensor op counters (ncu --set roofline adds sm__ops_path_tensor_*): "
                        f"FLOPs estimated as tensor-pipe utilization x {prec} peak at the "
                        "measured SM clock")
            else:
                flops, method, source = None, "unknown", "ncu" if from_ncu else "estimate"
                note = ("tensor FLOPs unknown: the counters are FP32-only; profile with "
                        "--set roofline or give op shapes") if from_ncu else "FLOPs unknown"
            if guessed:
                note = (note + "; " if note else "") + "precision assumed bf16"
            roof_kind = "tensor"
        else:
            prec, roof_kind = "fp32", "fp32"
            if fp32 is not None and fp32[i] == fp32[i]:
                flops, method, source = float(fp32[i]), "ncu fp32 fadd/fmul/ffma", "ncu"
            elif kt_flops[i] == kt_flops[i]:
                flops, method, source = float(kt_flops[i]), "with_flops", "estimate"
            else:
                flops, method, source = None, "unknown", "ncu" if from_ncu else "estimate"
        if not bytes_from_ncu[i] and b is not None:
            source = "estimate"
        peak = ceilings.peak(prec)
        placed = _place(flops, b, d, peak, ceilings.dram_bw, ceilings.ridge(prec))
        points.append(RooflinePoint(
            name=names[i], category=cats[i], source=source, roof=roof_kind, precision=prec,
            dur_ns=d, flops=flops, dram_bytes=b, peak_flops_per_s=peak,
            flops_method=method, note=note, **placed))  # type: ignore[arg-type]

    if any(p.flops_method == "tensor pipe utilization" for p in points):
        notes.append("some tensor-kernel FLOPs are estimates from tensor-pipe utilization")
    if any(p.flops is None for p in points):
        notes.append("some kernels have unknown FLOPs; the step placement covers the rest")
    return Roofline(ceilings=ceilings, points=points,
                    step=step_placement(points, ceilings, step_time_ns), notes=notes)


def step_placement(points: list[RooflinePoint], ceilings: Ceilings,
                   step_time_ns: float | None = None) -> StepPlacement:
    """Aggregate: known FLOPs and bytes over the step time (default the summed kernel time)."""
    kernel_ns = sum(p.dur_ns or 0.0 for p in points)
    time_ns = float(step_time_ns) if step_time_ns else kernel_ns
    known_f = [p for p in points if p.flops is not None]
    known_b = [p for p in points if p.dram_bytes is not None]
    flops = float(sum(p.flops for p in known_f)) if known_f else None  # type: ignore[misc]
    nbytes = float(sum(p.dram_bytes for p in known_b)) if known_b else None  # type: ignore[misc]
    tensor_time: dict[str, float] = {}
    for p in points:
        if p.roof == "tensor":
            tensor_time[p.precision] = tensor_time.get(p.precision, 0.0) + (p.dur_ns or 0.0)
    prec = max(tensor_time, key=lambda k: tensor_time[k]) if tensor_time else "fp32"
    placed = _place(flops, nbytes, time_ns or None, ceilings.peak(prec), ceilings.dram_bw,
                    ceilings.ridge(prec))

    def coverage(sel: list[RooflinePoint]) -> float | None:
        return sum(p.dur_ns or 0.0 for p in sel) / kernel_ns if kernel_ns else None

    return StepPlacement(time_ns=time_ns, flops=flops, dram_bytes=nbytes,
                         flops_time_coverage=coverage(known_f),
                         bytes_time_coverage=coverage(known_b), precision=prec,
                         **placed)  # type: ignore[arg-type]


def points_frame(result: Roofline) -> pd.DataFrame:
    """The points as a DataFrame (one row per kernel), for tables and export."""
    from dataclasses import asdict

    return pd.DataFrame([asdict(p) for p in result.points])
