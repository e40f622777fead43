"""Roofline placement of every launch, of every kernel (aggregated by name) and of the step.

Per launch and per kernel: arithmetic intensity (FLOP / DRAM byte), achieved FLOP/s and B/s,
the bounding roof min(peak, AI x bandwidth), the percentage of that roof reached, whether the
kernel sits left (memory) or right (compute) of the ridge point, and its time at the roof
(``sol_ns`` = max(FLOPs / peak, bytes / bandwidth): what the speed-of-light budget sums).

Columnar throughout: numpy arrays over the KernelTable's rows, grouped on the name's integer
codes; no Python object per launch (a 1 GB trace has millions).

Where the numbers come from (``flops_method`` and ``cost_source`` on every row):
- ncu metrics (analyzers.ncu_counters): DRAM bytes; FP32 FLOPs = FADD + FMUL + 2 x FFMA; tensor
  FLOPs from ``sm__ops_path_tensor_*`` (``--set roofline``). The default SpeedOfLight chart
  counts FP32 only, so a GEMM there shows ~0 FLOPs: tensor kernels are never placed on the FP32
  roof nor given the FP32 count. Without tensor op counters their FLOPs come from
  ``kernel_table.flops`` when the caller filled it (op shapes, inventory), else are estimated
  from tensor-pipe utilization x peak at the measured SM clock, else stay unknown with a note.
- the KernelTable's ``flops`` / ``dram_bytes`` (torch with_flops, the workload's operation
  inventory, op shapes), whose origin is its ``cost_source`` column where present.
Unknown stays NaN (null in exports) with a note, never 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers.ceilings import PRECISIONS, Ceilings, spec_ceilings
from analyzers.grouping import group_mode
from analyzers.ncu_counters import read_counters
from profilers.parsers.schema import Category, Col

TENSOR_CATEGORIES = (Category.GEMM, Category.ATTENTION)
_FP8_RE = re.compile(r"e4m3|e5m2|fp8|float8|qgmma|_f8", re.I)
_TF32_RE = re.compile(r"tf32|xf32", re.I)
_FP32 = PRECISIONS.index("fp32")
_BF16 = PRECISIONS.index("bf16")

SOURCES = ("ncu", "estimate")
ROOFS = ("tensor", "fp32")
BOUNDS = ("memory", "compute")
METHODS = ("ncu tensor ops", "op shapes / with_flops", "tensor pipe utilization", "unknown",
           "ncu fp32 fadd/fmul/ffma", "with_flops")
COST_SOURCES = ("ncu", "inventory", "op_shapes", "with_flops")
_NOTE_PIPE = ("no tensor op counters (ncu --set roofline adds sm__ops_path_tensor_*): FLOPs "
              "estimated as tensor-pipe utilization x {} peak at the measured SM clock")
_NOTE_FP32_ONLY = ("tensor FLOPs unknown: the counters are FP32-only; profile with --set "
                   "roofline or give op shapes")
_NOTE_UNKNOWN = "FLOPs unknown"
_GUESSED = "precision assumed bf16"


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
    launches: pd.DataFrame  # one row per KernelTable row (same order): LAUNCH_COLUMNS
    kernels: pd.DataFrame  # one row per kernel name, by total time: KERNEL_COLUMNS
    step: StepPlacement
    notes: list[str] = field(default_factory=list)


LAUNCH_COLUMNS = ("name", "category", "source", "cost_source", "roof", "precision", "dur_ns",
                  "flops", "dram_bytes", "arithmetic_intensity", "achieved_flops_per_s",
                  "achieved_bytes_per_s", "peak_flops_per_s", "roof_flops_per_s", "pct_of_roof",
                  "bound", "sol_ns", "flops_method", "note")
KERNEL_COLUMNS = ("name", "category", "launches", "total_ns", "mean_ns", "share", "flops",
                  "dram_bytes", "flops_coverage", "bytes_coverage", "arithmetic_intensity",
                  "achieved_flops_per_s", "achieved_bytes_per_s", "roof", "precision",
                  "peak_flops_per_s", "roof_flops_per_s", "bound", "pct_of_roof", "sol_ns",
                  "source", "cost_source", "flops_method", "note")


def _cat(codes: np.ndarray, categories: tuple[str, ...] | list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int16), categories=list(categories))


def _name_codes(kt: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer code per row and the distinct names (the table's categorical when it has one)."""
    names = kt[Col.NAME]
    cat = names.array if isinstance(names.dtype, pd.CategoricalDtype) else pd.Categorical(names)
    return np.asarray(cat.codes, dtype=np.int64), np.asarray(cat.categories, dtype=object)


def _name_precision(unique_names: np.ndarray) -> np.ndarray:
    """Precision code implied by each distinct kernel name (fp8 / tf32), -1 where none."""
    out = np.full(len(unique_names), -1, dtype=np.int64)
    for i, name in enumerate(unique_names):
        text = str(name)
        if _FP8_RE.search(text):
            out[i] = PRECISIONS.index("fp8")
        elif _TF32_RE.search(text):
            out[i] = PRECISIONS.index("tf32")
    return out


def _cost_origin(kt: pd.DataFrame, n: int) -> np.ndarray:
    """Code into COST_SOURCES of where the table's own flops/dram_bytes came from: its
    ``cost_source`` column where present, else with_flops for torch rows and op shapes for
    the rest (the only ways a caller fills them without that column)."""
    source = kt[Col.SOURCE].astype("category").array
    torch_rows = np.asarray(source.categories == "torch")[np.asarray(source.codes)]
    inferred = np.where(torch_rows & (np.asarray(source.codes) >= 0),
                        COST_SOURCES.index("with_flops"), COST_SOURCES.index("op_shapes"))
    if "cost_source" not in kt.columns:
        return inferred.astype(np.int64)
    given = kt[Col.COST_SOURCE].astype("category").array
    lookup = np.array([COST_SOURCES.index(c) if c in COST_SOURCES else -1
                       for c in given.categories] + [-1], dtype=np.int64)
    codes = lookup[np.asarray(given.codes, dtype=np.int64)]  # code -1 picks the trailing -1
    return np.where(codes >= 0, codes, inferred)


def _place(flops: np.ndarray, nbytes: np.ndarray, dur_ns: np.ndarray, peak: np.ndarray,
           bw: float | None, ridge: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorized placement; NaN wherever an input is unknown (never 0)."""
    bandwidth = bw if bw else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        secs = np.where(dur_ns > 0, dur_ns * 1e-9, np.nan)
        ai = np.where(nbytes > 0, flops / nbytes, np.nan)  # 0 or NaN bytes: no intensity
        fps = flops / secs
        bps = nbytes / secs
        memory = ai < ridge  # NaN compares False: unknown bound
        compute = ai >= ridge
        # memory: (F/t) / (AI x bw) == (B/t) / bw, defined also for F = 0; otherwise (compute,
        # or bytes unknown) against the compute roof.
        pct = np.where(memory, bps * (100.0 / bandwidth), fps * 100.0 / peak)
        sol = np.maximum(flops / peak, nbytes / bandwidth) * 1e9  # NaN when either is unknown
        roof = np.minimum(peak, ai * bandwidth)
    bound = compute.astype(np.int8) - ~(memory | compute)
    return {"arithmetic_intensity": ai, "achieved_flops_per_s": fps,
            "achieved_bytes_per_s": bps, "roof_flops_per_s": roof, "pct_of_roof": pct,
            "bound": bound, "sol_ns": sol}


def roofline(kt: pd.DataFrame, ceilings: Ceilings, metrics: pd.DataFrame | None = None,
             precision: str | None = None, step_time_ns: float | None = None) -> Roofline:
    """Place every launch of ``kt`` (rows aligned with ``metrics`` when given) on ``ceilings``,
    and aggregate by kernel name.

    ``precision``: the tensor precision when known (e.g. the spec's dtype); otherwise taken from
    tensor op counters or the kernel name, defaulting to bf16 (noted on the row).
    ``step_time_ns``: wall time of the step for the aggregate (default: sum of kernel time).
    """
    n = len(kt)
    if metrics is not None and len(metrics) != n:
        raise ValueError("metrics rows must align with the kernel table rows")
    codes, unique_names = _name_codes(kt)
    category = kt[Col.CATEGORY].astype("category").array
    dur = kt[Col.DUR_NS].to_numpy(dtype="float64", na_value=np.nan)
    kt_flops = kt[Col.FLOPS].to_numpy(dtype="float64", na_value=np.nan)
    kt_bytes = kt[Col.DRAM_BYTES].to_numpy(dtype="float64", na_value=np.nan)
    origin = _cost_origin(kt, n)
    ncu = COST_SOURCES.index("ncu")

    counters = read_counters(metrics, dur) if metrics is not None else None
    if counters is not None and counters.dur_ns is not None:
        dur = np.where(np.isnan(counters.dur_ns), dur, counters.dur_ns)
    secs = dur * 1e-9
    nbytes = counters.dram_bytes if counters is not None else np.full(n, np.nan)
    bytes_from_ncu = ~np.isnan(nbytes)
    nbytes = np.where(bytes_from_ncu, nbytes, kt_bytes)
    bytes_origin = np.where(bytes_from_ncu, ncu, origin)

    fp32 = counters.fp32_flops if counters is not None else None
    tensor_ops = counters.tensor_ops if counters is not None else {}
    signal = counters.tensor_signal if counters is not None else None
    tensor = np.append(np.isin(np.asarray(category.categories, dtype=object), TENSOR_CATEGORIES),
                       False)[np.asarray(category.codes, dtype=np.int64)]
    if signal is not None:
        tensor |= signal

    # Precision of each tensor launch: given, else the op counters' largest, else the name's.
    op_precs = list(tensor_ops)
    if op_precs:
        stack = np.vstack([tensor_ops[p] for p in op_precs])
        positive = ~np.isnan(stack) & (stack > 0)
        counted = positive.any(axis=0)
        counted_flops = np.where(positive, stack, 0.0).sum(axis=0)
        op_prec = np.array([PRECISIONS.index(p) for p in op_precs])[
            np.argmax(np.where(positive, stack, -np.inf), axis=0)]
    else:
        counted = np.zeros(n, dtype=bool)
        counted_flops = np.zeros(n)
        op_prec = np.full(n, _BF16)
    name_prec = _name_precision(unique_names)[codes] if n else np.zeros(0, dtype=np.int64)
    given = PRECISIONS.index(precision) if precision in PRECISIONS else -1
    if given >= 0:
        prec = np.full(n, given)
    else:
        prec = np.where(counted, op_prec, np.where(name_prec >= 0, name_prec, _BF16))
    prec = np.where(tensor, prec, _FP32)
    guessed = tensor & (given < 0) & ~counted & (name_prec < 0)

    # FLOPs, first source that knows them.
    kt_known = ~np.isnan(kt_flops)
    if fp32 is not None:  # a table holding the FP32 counter sum for a tensor kernel is wrong
        with np.errstate(invalid="ignore"):
            same = np.abs(kt_flops - fp32) <= 0.01 * np.fmax(np.fmax(np.abs(kt_flops),
                                                                     np.abs(fp32)), 1.0)
        kt_known_tensor = kt_known & ~(~np.isnan(fp32) & same)
    else:
        kt_known_tensor = kt_known
    issue_rates = spec_ceilings(ceilings.device_name) or ceilings
    issue_peak = np.array([issue_rates.peak(p) or np.nan for p in PRECISIONS])[prec]
    pipe_util = counters.pipe_util if counters is not None else None
    sm_clock = counters.sm_clock if counters is not None else None
    m_counted = tensor & counted
    m_kt_tensor = tensor & ~m_counted & kt_known_tensor
    if (pipe_util is not None and sm_clock is not None and issue_rates.tensor_clock_hz):
        m_pipe = (tensor & ~m_counted & ~m_kt_tensor & ~np.isnan(pipe_util)
                  & ~np.isnan(issue_peak) & (np.nan_to_num(dur) != 0))
        pipe_flops = (pipe_util / 100.0 * issue_peak * sm_clock / issue_rates.tensor_clock_hz
                      * secs)
    else:
        m_pipe = np.zeros(n, dtype=bool)
        pipe_flops = np.full(n, np.nan)
    m_fp32 = ~tensor & (~np.isnan(fp32) if fp32 is not None else np.zeros(n, dtype=bool))
    m_kt_other = ~tensor & ~m_fp32 & kt_known
    flops = np.select([m_counted, m_kt_tensor, m_pipe, m_fp32, m_kt_other],
                      [counted_flops, kt_flops, pipe_flops,
                       fp32 if fp32 is not None else np.full(n, np.nan), kt_flops], np.nan)
    method = np.select([m_counted, m_kt_tensor, m_pipe, m_fp32, m_kt_other],
                       [0, 1, 2, 4, 5], METHODS.index("unknown"))
    unknown = ~(m_counted | m_kt_tensor | m_pipe | m_fp32 | m_kt_other)
    from_ncu = m_counted | m_fp32 | (unknown & (counters is not None))
    # A launch is "ncu" only when nothing about it is estimated (bytes included).
    source = np.where(from_ncu & ~(~bytes_from_ncu & ~np.isnan(nbytes)), 0, 1)
    flops_origin = np.where(m_kt_tensor | m_kt_other, origin, ncu)
    cost = np.where(~np.isnan(flops), flops_origin, np.where(~np.isnan(nbytes), bytes_origin, -1))

    # Notes: base note x precision (pipe estimates name their precision) x guessed.
    base = np.select([m_pipe, tensor & unknown & (counters is not None), tensor & unknown],
                     [1, 2, 3], 0)
    notes_list = [None, *[_NOTE_PIPE.format(p) for p in PRECISIONS], _NOTE_FP32_ONLY, _NOTE_UNKNOWN]
    note_index = np.select([base == 1, base == 2, base == 3],
                           [1 + prec, 1 + len(PRECISIONS), 2 + len(PRECISIONS)], 0)
    note_codes = note_index * 2 + guessed
    note_texts = []
    for text in notes_list:
        note_texts += [text, _GUESSED if text is None else f"{text}; {_GUESSED}"]
    used = np.unique(note_codes[note_codes > 0]) if n else np.zeros(0, dtype=np.int64)
    note_cat = pd.Categorical.from_codes(
        np.where(note_codes > 0, np.searchsorted(used, note_codes), -1),
        categories=[note_texts[u] for u in used])

    peaks = np.array([ceilings.peak(p) or np.nan for p in PRECISIONS])
    ridges = np.array([ceilings.ridge(p) or np.nan for p in PRECISIONS])
    placed = _place(flops, nbytes, dur, peaks[prec], ceilings.dram_bw, ridges[prec])
    launches = pd.DataFrame({
        "name": pd.Categorical.from_codes(codes, categories=unique_names),
        "category": category,
        "source": _cat(source, SOURCES),
        "cost_source": _cat(cost, COST_SOURCES),
        "roof": _cat(np.where(tensor, 0, 1), ROOFS),
        "precision": _cat(prec, PRECISIONS),
        "dur_ns": dur, "flops": flops, "dram_bytes": nbytes,
        "arithmetic_intensity": placed["arithmetic_intensity"],
        "achieved_flops_per_s": placed["achieved_flops_per_s"],
        "achieved_bytes_per_s": placed["achieved_bytes_per_s"],
        "peak_flops_per_s": peaks[prec], "roof_flops_per_s": placed["roof_flops_per_s"],
        "pct_of_roof": placed["pct_of_roof"], "bound": _cat(placed["bound"], BOUNDS),
        "sol_ns": placed["sol_ns"], "flops_method": _cat(method, METHODS), "note": note_cat,
    }, columns=list(LAUNCH_COLUMNS), copy=False)  # no consolidation copy of 1M-row columns

    notes: list[str] = []
    if m_pipe.any():
        notes.append("some tensor-kernel FLOPs are estimates from tensor-pipe utilization")
    if np.isnan(flops).any():
        notes.append("some kernels have unknown FLOPs; the step placement covers the rest")
    arrays = {"codes": codes, "dur": dur, "flops": flops, "bytes": nbytes, "prec": prec,
              "tensor": tensor, "sol": placed["sol_ns"], "source": source, "cost": cost,
              "method": method, "note": np.asarray(note_cat.codes, dtype=np.int64)}
    kernels = kernel_rows(arrays, unique_names, kt, ceilings, list(note_cat.categories))
    return Roofline(ceilings=ceilings, launches=launches, kernels=kernels,
                    step=step_placement(arrays, ceilings, step_time_ns), notes=notes)


def kernel_rows(a: dict[str, np.ndarray], unique_names: np.ndarray, kt: pd.DataFrame,
                ceilings: Ceilings, note_categories: list[str]) -> pd.DataFrame:
    """One row per kernel name: sums over its launches, placed like one launch; rates over the
    time of the launches whose FLOPs (bytes) are known, so a partly known kernel is not diluted."""
    groups = len(unique_names)
    codes, dur = a["codes"], np.nan_to_num(a["dur"])
    valid = codes >= 0
    if valid.all():  # the usual case: no copies of million-row columns
        pick = a
    else:
        codes, dur = codes[valid], dur[valid]
        pick = {k: v[valid] for k, v in a.items() if k != "codes"}
    fk, bk = ~np.isnan(pick["flops"]), ~np.isnan(pick["bytes"])
    both = fk & bk

    def total(weights: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=groups)

    launches = np.bincount(codes, minlength=groups)
    total_ns = total(dur)
    flops_known_ns, bytes_known_ns = total(np.where(fk, dur, 0.0)), total(np.where(bk, dur, 0.0))
    flops = np.where(total(fk.astype(float)) > 0, total(np.where(fk, pick["flops"], 0.0)), np.nan)
    nbytes = np.where(total(bk.astype(float)) > 0, total(np.where(bk, pick["bytes"], 0.0)), np.nan)
    has_both = total(both.astype(float)) > 0
    f_both = np.where(has_both, total(np.where(both, pick["flops"], 0.0)), np.nan)
    b_both = np.where(has_both, total(np.where(both, pick["bytes"], 0.0)), np.nan)
    t_both = total(np.where(both, dur, 0.0))
    sol_ok = ~np.isnan(pick["sol"])
    sol = np.where(total(sol_ok.astype(float)) > 0, total(np.where(sol_ok, pick["sol"], 0.0)),
                   np.nan)
    prec = group_mode(codes, pick["prec"], dur, groups)
    roof = group_mode(codes, np.where(pick["tensor"], 0, 1), dur, groups)
    peaks = np.array([ceilings.peak(p) or np.nan for p in PRECISIONS])[prec]
    ridges = np.array([ceilings.ridge(p) or np.nan for p in PRECISIONS])[prec]
    # Both known: placed on (F, B, T) of those launches; FLOPs only: against the compute roof.
    placed = _place(np.where(has_both, f_both, flops), np.where(has_both, b_both, np.nan),
                    np.where(has_both, t_both, flops_known_ns), peaks, ceilings.dram_bw, ridges)
    with np.errstate(divide="ignore", invalid="ignore"):
        fps = np.where(flops_known_ns > 0, flops / (flops_known_ns * 1e-9), np.nan)
        bps = np.where(bytes_known_ns > 0, nbytes / (bytes_known_ns * 1e-9), np.nan)
        cover_f = np.where(total_ns > 0, flops_known_ns / total_ns, np.nan)
        cover_b = np.where(total_ns > 0, bytes_known_ns / total_ns, np.nan)
    category = kt[Col.CATEGORY].astype("category")
    cat_codes = np.asarray(category.cat.codes, dtype=np.int64)
    cat_codes = cat_codes if valid.all() else cat_codes[valid]
    cat_mode = group_mode(codes, cat_codes, dur, groups)
    grand = float(total_ns.sum())
    present = launches > 0
    out = pd.DataFrame({
        "name": unique_names,
        "category": pd.Categorical.from_codes(cat_mode, categories=category.cat.categories),
        "launches": launches, "total_ns": total_ns,
        "mean_ns": np.where(present, total_ns / np.maximum(launches, 1), np.nan),
        "share": total_ns / grand if grand > 0 else np.nan,
        "flops": flops, "dram_bytes": nbytes, "flops_coverage": cover_f,
        "bytes_coverage": cover_b, "arithmetic_intensity": placed["arithmetic_intensity"],
        "achieved_flops_per_s": fps, "achieved_bytes_per_s": bps,
        "roof": _cat(roof, ROOFS), "precision": _cat(prec, PRECISIONS),
        "peak_flops_per_s": peaks, "roof_flops_per_s": placed["roof_flops_per_s"],
        "bound": _cat(placed["bound"], BOUNDS), "pct_of_roof": placed["pct_of_roof"],
        "sol_ns": sol,
        "source": _cat(group_mode(codes, pick["source"], dur, groups), SOURCES),
        # where the known numbers came from: launches of unknown cost do not outvote them
        "cost_source": _cat(group_mode(codes, pick["cost"], np.where(pick["cost"] >= 0, dur, 0.0),
                                       groups), COST_SOURCES),
        "flops_method": _cat(group_mode(codes, pick["method"], dur, groups), METHODS),
        "note": pd.Categorical.from_codes(group_mode(codes, pick["note"], dur, groups),
                                          categories=note_categories),
    }, columns=list(KERNEL_COLUMNS))
    out = out[present].sort_values("total_ns", ascending=False, kind="stable")
    return out.reset_index(drop=True)


def step_placement(a: dict[str, np.ndarray], ceilings: Ceilings,
                   step_time_ns: float | None = None) -> StepPlacement:
    """Aggregate: known FLOPs and bytes over the step time (default the summed kernel time)."""
    dur = np.nan_to_num(a["dur"])
    kernel_ns = float(dur.sum())
    time_ns = float(step_time_ns) if step_time_ns else kernel_ns
    fk, bk = ~np.isnan(a["flops"]), ~np.isnan(a["bytes"])
    flops = float(a["flops"][fk].sum()) if fk.any() else None
    nbytes = float(a["bytes"][bk].sum()) if bk.any() else None
    tensor_time = np.bincount(a["prec"][a["tensor"]], weights=dur[a["tensor"]],
                              minlength=len(PRECISIONS))
    prec = PRECISIONS[int(np.argmax(tensor_time))] if a["tensor"].any() else "fp32"
    peak, ridge = ceilings.peak(prec), ceilings.ridge(prec)
    placed = _place(np.array([np.nan if flops is None else flops]),
                    np.array([np.nan if nbytes is None else nbytes]), np.array([time_ns or np.nan]),
                    np.array([peak or np.nan]), ceilings.dram_bw,
                    np.array([np.nan if ridge is None else ridge]))

    def one(key: str) -> float | None:
        value = float(placed[key][0])
        return None if value != value else value

    bound_code = int(placed["bound"][0])
    return StepPlacement(
        time_ns=time_ns, flops=flops, dram_bytes=nbytes,
        flops_time_coverage=float(dur[fk].sum()) / kernel_ns if kernel_ns else None,
        bytes_time_coverage=float(dur[bk].sum()) / kernel_ns if kernel_ns else None,
        precision=prec, arithmetic_intensity=one("arithmetic_intensity"),
        achieved_flops_per_s=one("achieved_flops_per_s"),
        achieved_bytes_per_s=one("achieved_bytes_per_s"),
        roof_flops_per_s=one("roof_flops_per_s"), pct_of_roof=one("pct_of_roof"),
        bound=None if bound_code < 0 else BOUNDS[bound_code])


def points_frame(result: Roofline) -> pd.DataFrame:
    """The per-launch placement (one row per KernelTable row)."""
    return result.launches
