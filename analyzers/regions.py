"""Regions: GPU time attributed to NVTX ranges and profiler annotations, as a tree, per range
name, and per iteration of a repeated range. Pure: frames in, dataclasses / frames out.

Input: the ranges frame the parsers give as ``.annotations`` (profilers.parsers.ranges): name,
start_ns, end_ns, kind ("nvtx", "user_annotation", "gpu_user_annotation", "overhead"),
thread, device. A kind containing "gpu" is a GPU-timeline range; "overhead" (the profiler's
own work) is not a region; every other kind is a CPU range.

Attribution, one owner range per kernel (its innermost enclosing range):
- CPU ranges: a kernel belongs to the innermost range open on the launching thread when its
  launch call began — the kernel's correlation id finds the runtime call (``runtime``:
  correlation, start_ns, thread). This is how nsys projects NVTX ranges onto the GPU.
- GPU ranges (``gpu_user_annotation``, already on the GPU timeline): the innermost range on the
  kernel's device that holds the kernel's start.
CPU ranges are used when the kernels can be tied to launches; else GPU ranges.

A range's GPU time is the summed duration of the kernels it owns, its own (``self_gpu_ns``)
and with its descendants' (``gpu_ns``); ``wall_ns`` is the range's own duration. Ranges nest
per thread by time; names are normalised (torch emit_nvtx's ", op_id = N, sizes = [...]" is
dropped) and in the tree numbered names with a shared stem ("ProfilerStep#3", "layer 12")
are one node ("ProfilerStep#*"). Iterations: a stem with several numbers (ProfilerStep#N) or
a name repeated at the top level whose copies do not overlap (an NVTX loop range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers.lookup import lookup_rows

_TORCH_SUFFIX = re.compile(r",\s*(?:seq|op_id|sizes|input_op_ids|stream|ids)\s*=.*$", re.S)
_NUMBERED = re.compile(r"^(.*?\D)(\d+)$")
_STEP_WORDS = re.compile(r"step|iter|epoch|batch|loop|round|sample", re.I)
ITERATION_MIN_COVERAGE = 0.5  # a repeated unnumbered range must hold this share of GPU time
MAX_ITERATION_SETS = 3


@dataclass
class IterationSet:
    name: str  # the stem ("ProfilerStep#*") or the repeated name
    count: int
    iterations: pd.DataFrame  # index, name, start_ns, wall_ns, gpu_ns, kernels[, gpu_span_ns]
    wall_median_ns: int | None
    gpu_median_ns: int | None
    gpu_cv: float | None  # stdev / mean of per-iteration GPU time
    coverage: float | None  # share of attributed GPU time inside these iterations
    notes: list[str] = field(default_factory=list)


@dataclass
class RegionAnalysis:
    source: str  # the kinds of range used: "nvtx", "user_annotation", ...
    attribution: str  # "launch" (CPU ranges via correlation) | "gpu timeline" (GPU ranges)
    range_count: int
    total_gpu_ns: int  # all GPU activity time in the KernelTable
    attributed_gpu_ns: int  # owned by some range
    tree: pd.DataFrame  # path, name, depth, count, wall_ns, gpu_ns, self_gpu_ns, kernels, share
    by_name: pd.DataFrame  # name, count, wall_ns, gpu_ns, self_gpu_ns, kernels, share, depth
    iterations: list[IterationSet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unattributed_gpu_ns(self) -> int:
        return self.total_gpu_ns - self.attributed_gpu_ns


def normalize_name(name: str) -> str:
    """A range's name without torch emit_nvtx's per-call suffixes (op ids, sizes)."""
    return _TORCH_SUFFIX.sub("", name).strip() or name


def _stem(name: str) -> tuple[str, int | None]:
    m = _NUMBERED.match(name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def _side(kinds: pd.Series) -> np.ndarray:
    """Per range: "gpu" (on the GPU timeline), "cpu", or "" (profiler overhead: no region)."""
    if isinstance(kinds.dtype, pd.CategoricalDtype):  # per category, not per range
        codes, labels = kinds.cat.codes.to_numpy(), list(kinds.cat.categories)
    else:
        codes, labels = pd.factorize(kinds.astype("object"))
    side = np.array(["gpu" if "gpu" in str(k) else "" if str(k) == "overhead" else "cpu"
                     for k in labels] + ["cpu"], dtype=object)
    return side[codes]  # code -1 (missing kind): the last entry


def _rows(frame: pd.DataFrame, keep: np.ndarray | pd.Series) -> pd.DataFrame:
    """``frame[keep]``, without the copy when every row is kept (a million NVTX ranges)."""
    return frame if bool(np.all(keep)) else frame[keep]


def _ints(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan)


# ---------------------------------------------------------------- nesting

@dataclass
class _Nest:
    """Ranges in nesting order: sorted by (thread, start, -end); depth and parent per row."""

    order: np.ndarray  # rows of the input frame, nesting order
    key_start: np.ndarray
    key_end: np.ndarray
    depth: np.ndarray
    parent: np.ndarray  # position (in nesting order) of the parent, -1 at the top
    crossing: int  # ranges that overlap a sibling without nesting in it
    ends_sorted: np.ndarray  # key_end sorted (for the open-range counts)


def _nest(ks: np.ndarray, ke: np.ndarray) -> _Nest:
    """Nesting of ranges given as (thread-offset) start/end keys."""
    # by start, the outer (later-ending) range first at a tie: one stable sort where no two
    # ranges start together
    order = np.argsort(ks, kind="stable")
    if len(order) > 1 and not (np.diff(ks[order]) > 0).all():
        order = np.lexsort((-ke, ks))
    ks, ke = ks[order], ke[order]
    n = len(order)
    ends_sorted = np.sort(ke)
    # Depth = ranges open at a start, less one: in nesting order the i-th range has i ranges
    # started before it (outer ones first at a tie), and the ends at or before its start are
    # closed (ends first at a tie).
    depth = np.arange(n, dtype=np.int64) - np.searchsorted(ends_sorted, ks, side="right")
    depth = np.maximum(depth, 0)
    parent = np.full(n, -1, dtype=np.int64)
    for d in range(1, int(depth.max(initial=0)) + 1):
        here, above = np.flatnonzero(depth == d), np.flatnonzero(depth == d - 1)
        if not len(here) or not len(above):
            continue
        j = np.searchsorted(above, here, side="right") - 1
        ok = j >= 0
        parent[here[ok]] = above[j[ok]]
    has = parent >= 0
    crossing = int((ke[has] > ke[parent[has]]).sum())
    return _Nest(order, ks, ke, depth, parent, crossing, ends_sorted)


def _innermost(nest: _Nest, points: np.ndarray) -> np.ndarray:
    """Position (nesting order) of the innermost range holding each point key, or -1."""
    ks, ke, depth = nest.key_start, nest.key_end, nest.depth
    out = np.full(len(points), -1, dtype=np.int64)
    if not len(ks) or not len(points):
        return out
    # Open ranges at p: starts <= p minus ends <= p; the innermost is the last started range
    # at depth (open - 1) that started before p.
    ends_sorted = nest.ends_sorted
    open_count = np.searchsorted(ks, points, side="right") - np.searchsorted(ends_sorted, points,
                                                                               side="right")
    for d in range(int(depth.max(initial=0)) + 1):
        sel = np.flatnonzero(open_count == d + 1)
        if not len(sel):
            continue
        level = np.flatnonzero(depth == d)
        j = np.searchsorted(ks[level], points[sel], side="right") - 1
        ok = j >= 0
        cand = level[np.maximum(j, 0)]
        ok &= ke[cand] > points[sel]
        out[sel[ok]] = cand[ok]
    return out


# ---------------------------------------------------------------- attribution

def _launch_points(kernels: pd.DataFrame, runtime: pd.DataFrame | None
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per kernel: (launch start, launch thread) from the runtime call with its correlation."""
    if runtime is None or not len(runtime) or "correlation" not in runtime:
        return None
    corr_rt = _ints(runtime["correlation"])
    ok = ~np.isnan(corr_rt) & ~np.isnan(_ints(runtime["start_ns"]))
    if not ok.any():
        return None
    starts = _ints(runtime["start_ns"])[ok]
    threads = _ints(runtime["thread"])[ok] if "thread" in runtime else np.full(int(ok.sum()), np.nan)
    pos = lookup_rows(corr_rt[ok], _ints(kernels["correlation"]), keep="first")
    found = pos >= 0
    if not found.any():
        return None
    t = np.where(found, starts[np.maximum(pos, 0)], np.nan)
    th = np.where(found, threads[np.maximum(pos, 0)], np.nan)
    return t, th


def _owners(ranges: pd.DataFrame, kernels: pd.DataFrame, runtime: pd.DataFrame | None,
            kind: str) -> tuple[_Nest, np.ndarray, str] | None:
    """(nesting, owner position per kernel or -1, attribution label)."""
    sel = _rows(ranges, _side(ranges["kind"]) == kind)
    start, end = _ints(sel["start_ns"]), _ints(sel["end_ns"])
    thread = _ints(sel["thread"]) if kind == "cpu" else _ints(sel["device"])
    if kind == "cpu":
        launch = _launch_points(kernels, runtime)
        if launch is None:
            return None
        points, point_thread = launch
        label = "launch"
        if np.isnan(thread).all() or np.isnan(point_thread).all():
            thread = np.full(len(sel), np.nan)  # no thread ids: one timeline for all
            point_thread = np.full(len(points), np.nan)
    else:
        points = _ints(kernels["start_ns"])
        point_thread = _ints(kernels["device"])
        label = "gpu timeline"
        if np.isnan(thread).all():
            point_thread = np.full(len(points), np.nan)
    # Keys comparable across threads: thread code * span + (t - t0), one code space for the
    # ranges and the points.
    codes = pd.factorize(np.where(np.isnan(np.concatenate([thread, point_thread])), -1.0,
                                  np.concatenate([thread, point_thread])))[0].astype(np.int64)
    codes_r, codes_p = codes[: len(thread)], codes[len(thread):]
    lo = float(start.min())
    span = int(end.max() - lo) + 2
    nest = _nest(codes_r * span + (start - lo).astype(np.int64),
                 codes_r * span + (end - lo).astype(np.int64))
    valid = ~np.isnan(points)
    # A point before the first range or after the last lands in its thread's empty margin.
    offset = np.clip(np.where(valid, points, lo) - lo, -1, span - 1).astype(np.int64)
    owner = np.where(valid, _innermost(nest, codes_p * span + offset), -1)
    return nest, owner, label


# ---------------------------------------------------------------- aggregation

def _name_codes(names: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per range, normalised name per code): names are normalised once per distinct
    name, not per range (a torch emit_nvtx run has a million ranges)."""
    if isinstance(names.dtype, pd.CategoricalDtype):
        # by category code (integers: no string hashing per range), in order of appearance
        # as factorizing the strings gives
        codes, first = pd.factorize(names.cat.codes.to_numpy())
        if (first < 0).any():  # missing names: code -1, as factorizing the strings gives
            missing = int(np.flatnonzero(first < 0)[0])
            codes = np.where(codes == missing, -1, codes - (codes > missing))
            first = np.delete(first, missing)
        labels = names.cat.categories.to_numpy(dtype=object)[first.astype(np.int64)]
    else:
        codes, labels = pd.factorize(names.astype("object"))
    norm = [normalize_name(str(x)) for x in labels]
    norm_codes, uniq = pd.factorize(np.array(norm + ["<unnamed>"], dtype=object))
    return norm_codes[codes], np.asarray(uniq, dtype=object)  # code -1 -> "<unnamed>"


def _collapsed(names: np.ndarray) -> np.ndarray:
    """Numbered names whose stem has several numbers become stem + '*' (per distinct name)."""
    stems = [_stem(n) for n in names]
    numbers: dict[str, set[int]] = {}
    for stem, num in stems:
        if num is not None:
            numbers.setdefault(stem, set()).add(num)
    return np.array([f"{stem}*" if num is not None and len(numbers[stem]) > 1 else name
                     for (stem, num), name in zip(stems, names, strict=True)], dtype=object)


def _paths(nest: _Nest, node_codes: np.ndarray) -> np.ndarray:
    """Path code per range (nesting order): same path = same node of the tree. One vectorized
    step per depth: (parent's path, node) pairs numbered after the paths already taken."""
    codes = node_codes.astype(np.int64)
    path = np.full(len(codes), -1, dtype=np.int64)
    taken = 0
    width = int(codes.max(initial=0)) + 1
    for d in range(int(nest.depth.max(initial=-1)) + 1):
        here = np.flatnonzero(nest.depth == d)
        parents = np.where(nest.parent[here] >= 0, path[np.maximum(nest.parent[here], 0)], -1)
        # numbered in sorted order as np.unique would, by hashing (few paths, many ranges)
        local = pd.factorize((parents + 1) * width + codes[here], sort=True)[0]
        path[here] = taken + local
        taken += int(local.max(initial=-1)) + 1
    return path


def region_analysis(ranges: pd.DataFrame | None, kernels: pd.DataFrame | None,
                    runtime: pd.DataFrame | None = None, source: str | None = None
                    ) -> RegionAnalysis | None:
    """Regions of a run; None when it holds no ranges (or no GPU activity)."""
    if ranges is None or not len(ranges) or kernels is None or not len(kernels):
        return None
    ranges = _rows(ranges, (ranges["start_ns"].notna() & ranges["end_ns"].notna()
                            & (ranges["end_ns"] >= ranges["start_ns"])).to_numpy(dtype=bool))
    notes: list[str] = []
    result = None
    side = _side(ranges["kind"])
    for kind in ("cpu", "gpu"):
        if (side == kind).any():
            result = _owners(ranges, kernels, runtime, kind)
            if result is not None:
                break
            notes.append("CPU ranges present but no kernel could be tied to its launch call "
                         "(no runtime events with correlation ids)")
    if result is None:
        return None
    nest, owner, label = result
    kind = "cpu" if label == "launch" else "gpu"
    sel = _rows(ranges, side == kind)
    dur = _ints(kernels["dur_ns"])
    dur = np.where(np.isnan(dur), 0, dur).astype(np.int64)
    n = len(nest.order)
    own = owner >= 0
    self_gpu = np.zeros(n, dtype=np.int64)
    np.add.at(self_gpu, owner[own], dur[own])  # integer sums: exact ns
    self_k = np.bincount(owner[own], minlength=n).astype(np.int64)
    incl, incl_k = self_gpu.copy(), self_k.copy()
    for d in range(int(nest.depth.max(initial=0)), 0, -1):
        here = np.flatnonzero((nest.depth == d) & (nest.parent >= 0))
        np.add.at(incl, nest.parent[here], incl[here])
        np.add.at(incl_k, nest.parent[here], incl_k[here])
    row_codes, uniq_names = _name_codes(sel["name"])
    name_code = row_codes[nest.order]
    names = pd.Categorical.from_codes(name_code, categories=pd.Index(uniq_names, dtype=object))
    wall = (_ints(sel["end_ns"]) - _ints(sel["start_ns"]))[nest.order].astype(np.int64)
    total = int(dur.sum())
    attributed = int(dur[own].sum())
    if nest.crossing:
        notes.append(f"{nest.crossing:,} ranges overlap a range they do not nest in "
                     "(start/end ranges across threads): their nesting is approximate")
    frame = pd.DataFrame({"name": names, "wall_ns": wall, "gpu_ns": incl, "self_gpu_ns": self_gpu,
                          "kernels": incl_k, "depth": nest.depth}, copy=False)  # read only
    by_name = (frame.groupby("name", sort=False, observed=True)
               .agg(count=("wall_ns", "size"), wall_ns=("wall_ns", "sum"), gpu_ns=("gpu_ns", "sum"),
                    self_gpu_ns=("self_gpu_ns", "sum"), kernels=("kernels", "sum"),
                    depth=("depth", "min"))
               .reset_index().sort_values(["gpu_ns", "wall_ns"], ascending=False, kind="stable",
                                          ignore_index=True))
    by_name["name"] = by_name["name"].astype(object)
    by_name["share"] = by_name["gpu_ns"] / total if total else None
    node_names = _collapsed(uniq_names)
    node_codes, node_labels = pd.factorize(node_names)
    path = _paths(nest, node_codes[name_code])
    node = pd.Categorical.from_codes(node_codes[name_code], categories=pd.Index(node_labels,
                                                                                 dtype=object))
    tree = _tree(frame.assign(node=node, path=path), nest, path, total)
    return RegionAnalysis(
        source=source or ", ".join(sorted(str(k) for k in _kinds(sel["kind"])))
        or "ranges",
        attribution=label, range_count=n, total_gpu_ns=total, attributed_gpu_ns=attributed,
        tree=tree, by_name=by_name,
        iterations=_iterations(frame, name_code, uniq_names, nest, sel, ranges, attributed),
        notes=notes)


def _kinds(kinds: pd.Series) -> list[Any]:
    """The distinct kinds present (per category code for a categorical column)."""
    if isinstance(kinds.dtype, pd.CategoricalDtype):
        used = np.unique(kinds.cat.codes.to_numpy())
        return [kinds.cat.categories[c] if c >= 0 else np.nan for c in used.tolist()]
    return list(pd.unique(kinds.astype(object)))


def _tree(frame: pd.DataFrame, nest: _Nest, path: np.ndarray, total: int) -> pd.DataFrame:
    """One row per tree node in depth-first order, heaviest child first."""
    g = (frame.groupby("path", sort=False)
         .agg(name=("node", "first"), depth=("depth", "first"), count=("wall_ns", "size"),
              wall_ns=("wall_ns", "sum"), gpu_ns=("gpu_ns", "sum"),
              self_gpu_ns=("self_gpu_ns", "sum"), kernels=("kernels", "sum")))
    parent_path = pd.Series(np.where(nest.parent >= 0, path[np.maximum(nest.parent, 0)], -1),
                            index=path).groupby(level=0).first()
    g["parent"] = parent_path.reindex(g.index).to_numpy()
    children: dict[int, list[int]] = {}
    for p, parent in zip(g.index.tolist(), g["parent"].tolist(), strict=True):
        children.setdefault(int(parent), []).append(int(p))
    weight = g["gpu_ns"].to_dict()
    ordered: list[int] = []
    names: dict[int, str] = {}
    stack = [(c, "") for c in sorted(children.get(-1, []), key=lambda c: -weight[c])][::-1]
    while stack:
        p, prefix = stack.pop()
        names[p] = f"{prefix}/{g.at[p, 'name']}" if prefix else str(g.at[p, 'name'])
        ordered.append(p)
        kids = sorted(children.get(p, []), key=lambda c: -weight[c])
        stack += [(c, names[p]) for c in kids[::-1]]
    out = g.loc[ordered].reset_index(drop=True)
    out.insert(0, "path", [names[p] for p in ordered])
    out["share"] = out["gpu_ns"] / total if total else None
    return out.drop(columns=["parent"])


def _iteration_frame(idx: np.ndarray, frame: pd.DataFrame, starts: np.ndarray) -> pd.DataFrame:
    order = idx[np.argsort(starts[idx], kind="stable")]
    return pd.DataFrame({"index": np.arange(1, len(order) + 1),
                         "name": frame["name"].to_numpy()[order].astype(object),
                         "start_ns": starts[order], "wall_ns": frame["wall_ns"].to_numpy()[order],
                         "gpu_ns": frame["gpu_ns"].to_numpy()[order],
                         "kernels": frame["kernels"].to_numpy()[order]})


def _iterations(frame: pd.DataFrame, name_code: np.ndarray, uniq_names: np.ndarray,
                nest: _Nest, sel: pd.DataFrame, ranges: pd.DataFrame,
                attributed: int) -> list[IterationSet]:
    starts = _ints(sel["start_ns"])[nest.order].astype(np.int64)
    ends = _ints(sel["end_ns"])[nest.order].astype(np.int64)
    # Group key per distinct name: the stem for numbered names ("ProfilerStep#*"), else the
    # name; then the rows of each key with at least two copies.
    stems = [_stem(str(n)) for n in uniq_names]
    keys = [f"{stem}*" if num is not None else str(n) for (stem, num), n in
            zip(stems, uniq_names, strict=True)]
    numbered = {k for k, (_, num) in zip(keys, stems, strict=True) if num is not None}
    key_codes, key_labels = pd.factorize(np.array(keys, dtype=object))
    row_key = key_codes[name_code]
    counts = np.bincount(row_key, minlength=len(key_labels))
    # (a stable sort of small integers is a radix sort: the key in the narrowest type)
    order = np.argsort(row_key.astype(np.min_scalar_type(max(len(key_labels), 1))),
                       kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    gpu_all = frame["gpu_ns"].to_numpy()
    candidates: list[tuple[int, str, np.ndarray, float | None]] = []
    for k in np.flatnonzero(counts >= 2):
        key = str(key_labels[k])
        idx = order[bounds[k]: bounds[k + 1]]
        top = int(nest.depth[idx].min())
        idx = idx[nest.depth[idx] == top]
        if len(idx) < 2 or (key in numbered and len(np.unique(name_code[idx])) < 2):
            continue
        o = idx[np.argsort(starts[idx], kind="stable")]
        if (starts[o][1:] < ends[o][:-1]).any():
            continue  # copies overlap: not a loop
        coverage = float(gpu_all[idx].sum()) / attributed if attributed else None
        steppy = key in numbered or bool(_STEP_WORDS.search(key))
        if not steppy and (coverage or 0) < ITERATION_MIN_COVERAGE:
            continue
        candidates.append((top, key, idx, coverage))
    # The outermost loop only: a set whose copies all sit inside another set's copies (the
    # "forward" of every ProfilerStep) is part of those iterations, not a loop of its own.
    taken: set[int] = set()
    sets: list[IterationSet] = []
    for _, key, idx, coverage in sorted(candidates, key=lambda c: (c[0], -(c[3] or 0))):
        if all(_has_ancestor_in(int(i), nest.parent, taken) for i in idx):
            continue
        taken.update(int(i) for i in idx)
        sets.append(_summarize(key, _iteration_frame(idx, frame, starts), coverage, ranges))
    sets.sort(key=lambda s: -(s.coverage or 0))
    return sets[:MAX_ITERATION_SETS]


def _has_ancestor_in(i: int, parent: np.ndarray, rows: set[int]) -> bool:
    p = int(parent[i])
    while p >= 0:
        if p in rows:
            return True
        p = int(parent[p])
    return False


def _summarize(key: str, it: pd.DataFrame, coverage: float | None,
               ranges: pd.DataFrame) -> IterationSet:
    notes: list[str] = []
    gpu = it["gpu_ns"].to_numpy(dtype="float64")
    wall = it["wall_ns"].to_numpy(dtype="float64")
    mean = float(gpu.mean()) if len(gpu) else 0.0
    cv = float(gpu.std() / mean) if mean > 0 and len(gpu) > 1 else None
    gpu_med = int(np.median(gpu)) if len(gpu) else None
    if len(it) > 2 and gpu_med and gpu[0] > 1.5 * gpu_med:
        notes.append(f"iteration 1 took {gpu[0] / gpu_med:.1f}x the median GPU time (warm-up)")
    # The same iterations on the GPU timeline (Kineto gpu_user_annotation), matched by order.
    gpu_ranges = ranges[_side(ranges["kind"]) == "gpu"]
    if len(gpu_ranges):
        names = gpu_ranges["name"].astype(str).map(normalize_name)
        wanted = set(it["name"])
        match = gpu_ranges[names.isin(wanted).to_numpy()].sort_values("start_ns")
        if len(match) == len(it):
            it["gpu_span_ns"] = (match["end_ns"] - match["start_ns"]).to_numpy(dtype="int64")
    return IterationSet(name=key, count=len(it), iterations=it,
                        wall_median_ns=int(np.median(wall)) if len(wall) else None,
                        gpu_median_ns=gpu_med, gpu_cv=cv, coverage=coverage, notes=notes)


# ---------------------------------------------------------------- diff

@dataclass
class RegionDiff:
    by_name: pd.DataFrame  # name, a_count, b_count, a_gpu_ns, b_gpu_ns, delta_ns, delta_pct,
    #                        a_per_call_ns, b_per_call_ns
    iterations: pd.DataFrame  # name, a_count, b_count, a_gpu_median_ns, b_gpu_median_ns,
    #                           delta_pct, a_wall_median_ns, b_wall_median_ns
    notes: list[str] = field(default_factory=list)


def diff_regions(a: RegionAnalysis | None, b: RegionAnalysis | None) -> RegionDiff | None:
    """Region-by-region GPU time of baseline ``a`` against candidate ``b`` (matched by range
    name; iterations by set name, compared per iteration so different step counts compare)."""
    if a is None or b is None:
        return None
    notes: list[str] = []
    if a.attribution != b.attribution:
        notes.append(f"ranges attributed differently ({a.attribution} vs {b.attribution})")
    cols = ["name", "count", "gpu_ns"]
    m = a.by_name[cols].merge(b.by_name[cols], on="name", how="outer", suffixes=("_a", "_b"))
    out = pd.DataFrame({
        "name": m["name"],
        "a_count": m["count_a"].astype("Int64"), "b_count": m["count_b"].astype("Int64"),
        "a_gpu_ns": m["gpu_ns_a"].astype("Int64"), "b_gpu_ns": m["gpu_ns_b"].astype("Int64")})
    out["delta_ns"] = out["b_gpu_ns"] - out["a_gpu_ns"]
    out["delta_pct"] = (out["delta_ns"].astype("Float64") * 100.0
                        / out["a_gpu_ns"].astype("Float64").replace(0, pd.NA))
    out["a_per_call_ns"] = out["a_gpu_ns"].astype("Float64") / out["a_count"].astype("Float64")
    out["b_per_call_ns"] = out["b_gpu_ns"].astype("Float64") / out["b_count"].astype("Float64")
    order = out["delta_ns"].abs().astype("float64").fillna(-1).sort_values(ascending=False).index
    out = out.loc[order].reset_index(drop=True)
    only_a = int(out["b_count"].isna().sum())
    only_b = int(out["a_count"].isna().sum())
    if only_a or only_b:
        notes.append(f"{only_a} range names only in A, {only_b} only in B")
    rows = []
    b_sets = {s.name: s for s in b.iterations}
    for s in a.iterations:
        t = b_sets.get(s.name)
        if t is None:
            continue
        delta = ((t.gpu_median_ns - s.gpu_median_ns) * 100.0 / s.gpu_median_ns
                 if s.gpu_median_ns and t.gpu_median_ns is not None else None)
        rows.append({"name": s.name, "a_count": s.count, "b_count": t.count,
                     "a_gpu_median_ns": s.gpu_median_ns, "b_gpu_median_ns": t.gpu_median_ns,
                     "delta_pct": delta, "a_wall_median_ns": s.wall_median_ns,
                     "b_wall_median_ns": t.wall_median_ns})
    iterations = pd.DataFrame(rows, columns=["name", "a_count", "b_count", "a_gpu_median_ns",
                                             "b_gpu_median_ns", "delta_pct", "a_wall_median_ns",
                                             "b_wall_median_ns"])
    return RegionDiff(by_name=out, iterations=iterations, notes=notes)
