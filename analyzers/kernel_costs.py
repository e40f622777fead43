"""Fill a KernelTable's ``flops``, ``dram_bytes`` and ``cost_source`` from what the run knows.

Pure. Sources, best first, each row saying which it came from:

  ncu         hardware counters (the ncu parsers fill the columns; kept as they are)
  inventory   the run's own operation inventory matched by launch order — works inside CUDA
              graphs and for compiled / Triton kernels (``analyzers.inventory_match``)
  op_shapes   the kernel's parent aten op and its recorded shapes (record_shapes), costed with
              ``workloads.op_cost``: the path for traces from elsewhere. An op's cost goes to its
              GEMM / attention kernel(s) (shared by duration; a split-K reduce gets its own lower
              bound, a memset nothing), or, for an element-wise op, to all its kernels by
              duration.
  with_flops  the profiler's own FLOP count on the op (no bytes)

Unknown stays <NA>, and the notes say why.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from analyzers.distinct import isin_mask, map_distinct, value_codes
from analyzers.inventory_match import (
    ANCHOR_KINDS,
    InventoryMatch,
    anchor_classes,
    aux_kernel_cost,
    match_inventory,
)
from profilers.parsers.kernel_table import COST_SOURCES
from profilers.parsers.lookup import lookup_rows
from profilers.parsers.schema import Col
from workloads.inventory_format import decode
from workloads.op_cost import Arg, OpCost, TensorArg, dtype_bytes, op_cost

INVENTORY_SOURCES = ("torch", "nsys")  # kernel tables without counters


def attach_kernel_costs(kernels: pd.DataFrame, ops: pd.DataFrame | None = None,
                        runtime: pd.DataFrame | None = None, inventory: Any = None,
                        step_windows: list[tuple[int, int]] | None = None
                        ) -> tuple[pd.DataFrame, list[str], InventoryMatch | None]:
    """A copy of ``kernels`` with the cost columns filled; notes; the inventory match (or None).

    ``inventory``: the run's stored inventory payload (result.json ``details.inventory``), if any.
    """
    out = kernels.copy()
    notes: list[str] = []
    flops = out[Col.FLOPS].to_numpy(dtype="float64", na_value=np.nan).copy()
    nbytes = out[Col.DRAM_BYTES].to_numpy(dtype="float64", na_value=np.nan).copy()
    # Where each row's cost comes from, as a code into COST_SOURCES (-1: unknown).
    source = _source_codes(out)
    is_ncu = isin_mask(out[Col.SOURCE], ("ncu",))
    source[is_ncu & (~np.isnan(flops) | ~np.isnan(nbytes)) & (source < 0)] = _NCU
    profiler_flops = np.where(is_ncu, np.nan, flops)
    flops[~is_ncu], nbytes[~is_ncu] = np.nan, np.nan
    open_rows = ~is_ncu & isin_mask(out[Col.SOURCE], INVENTORY_SOURCES)

    match: InventoryMatch | None = None
    if inventory is not None and open_rows.any():
        decoded, why = decode(inventory)
        if decoded is None:
            notes.append(f"no inventory costs: {why}")
        else:
            match = _match_per_rank(out, decoded, step_windows, notes)
            hit = open_rows & match.assigned
            flops[hit], nbytes[hit] = match.flops[hit], match.dram_bytes[hit]
            source[hit] = COST_SOURCES.index("inventory")
            open_rows &= ~hit
    if open_rows.any() and ops is not None and runtime is not None and len(ops):
        shape_flops, shape_bytes = op_shape_costs(out, ops, runtime)
        hit = open_rows & (~np.isnan(shape_flops) | ~np.isnan(shape_bytes))
        flops[hit], nbytes[hit] = shape_flops[hit], shape_bytes[hit]
        source[hit] = COST_SOURCES.index("op_shapes")
        open_rows &= ~hit
        if hit.any():
            notes.append(f"FLOPs/bytes of {int(hit.sum()):,} kernels from their aten op's "
                         "recorded shapes")
    with_flops = open_rows & ~np.isnan(profiler_flops)
    flops[with_flops] = profiler_flops[with_flops]
    source[with_flops] = COST_SOURCES.index("with_flops")
    out[Col.FLOPS] = _floating(flops)
    out[Col.DRAM_BYTES] = _floating(nbytes)
    out[Col.COST_SOURCE] = pd.Categorical.from_codes(source, categories=list(COST_SOURCES))
    coverage = _coverage(out)
    if coverage:
        notes.append(coverage)
    return out, notes, match


_NCU = COST_SOURCES.index("ncu")


def _source_codes(kernels: pd.DataFrame) -> np.ndarray:
    """The table's own ``cost_source`` as codes into COST_SOURCES (-1: none)."""
    if "cost_source" not in kernels:
        return np.full(len(kernels), -1, dtype=np.int8)
    lookup = {name: i for i, name in enumerate(COST_SOURCES)}
    return map_distinct(kernels[Col.COST_SOURCE], lambda v: lookup.get(v, -1), -1, dtype=np.int8)


def _floating(values: np.ndarray) -> pd.arrays.FloatingArray:
    """A Float64 column with NaN as <NA> (built from the arrays, not one object per row)."""
    missing = np.isnan(values)
    return pd.arrays.FloatingArray(np.where(missing, 0.0, values), missing)


def _match_per_rank(kernels: pd.DataFrame, inventory: Any,
                    step_windows: list[tuple[int, int]] | None, notes: list[str]
                    ) -> InventoryMatch:
    """Each rank's kernels are their own launch sequence (a multi-rank trace interleaves them
    in time); ranks of one run execute the same ops, so each matches the one inventory."""
    ranks = kernels[Col.RANK].to_numpy(dtype="float64", na_value=np.nan)
    values = np.unique(ranks[~np.isnan(ranks)])
    if len(values) <= 1:
        match = match_inventory(kernels, inventory, step_windows)
        notes += match.notes
        return match
    merged = InventoryMatch(np.full(len(kernels), np.nan), np.full(len(kernels), np.nan))
    for rank in values:
        rows = np.flatnonzero(ranks == rank)
        part = match_inventory(kernels.iloc[rows], inventory, step_windows)
        merged.flops[rows], merged.dram_bytes[rows] = part.flops, part.dram_bytes
        merged.steps_matched += part.steps_matched
        merged.anchors_per_step, merged.class_totals = part.anchors_per_step, part.class_totals
        notes += [f"rank {int(rank)}: {note}" for note in part.notes]
    return merged


def _coverage(kernels: pd.DataFrame) -> str | None:
    dur = kernels[Col.DUR_NS].to_numpy(dtype="float64", na_value=0.0)
    total = dur.sum()
    if total <= 0:
        return None  # no kernels (a CPU run): nothing to say
    codes, sources = value_codes(kernels[Col.COST_SOURCE])
    f_known = kernels[Col.FLOPS].notna().to_numpy()
    b_known = kernels[Col.DRAM_BYTES].notna().to_numpy()
    # In order of first appearance, as the rows name them.
    seen = pd.unique(codes[codes >= 0])
    parts = [f"{sources[c]} {dur[codes == c].sum() / total:.0%}" for c in seen]
    return (f"FLOPs known for {dur[f_known].sum() / total:.1%} of kernel time, bytes for "
            f"{dur[b_known].sum() / total:.1%}" + (f" ({', '.join(parts)})" if parts else ""))


# ---- op shapes --------------------------------------------------------------------------

def _parse_json(text: Any) -> list[Any]:
    if not isinstance(text, str) or not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _scalar(text: Any) -> Arg:
    if not isinstance(text, str) or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@lru_cache(maxsize=65536)
def _cost_of(name: str, dims: str, types: str, concrete: str) -> OpCost:
    """The op's cost from its recorded arguments (cached: a model repeats the same calls)."""
    dims_l, types_l, concrete_l = _parse_json(dims), _parse_json(types), _parse_json(concrete)
    args: list[Arg] = []
    for i, shape in enumerate(dims_l):
        dtype = types_l[i] if i < len(types_l) and isinstance(types_l[i], str) else ""
        is_ints = isinstance(shape, list) and all(isinstance(d, int) for d in shape)
        if is_ints and dtype_bytes(dtype) is not None:
            args.append(TensorArg(tuple(shape), dtype))
        elif isinstance(shape, list) and shape and all(isinstance(d, list) for d in shape):
            args.append([])  # a TensorList: the trace does not say its element type
        else:
            args.append(_scalar(concrete_l[i]) if i < len(concrete_l) else None)
    return op_cost(name, args)


def _kernel_op_rows(kernels: pd.DataFrame, ops: pd.DataFrame, runtime: pd.DataFrame
                    ) -> np.ndarray:
    """Row of each kernel's parent op (-1 if none): kernel correlation -> the runtime call's
    External id -> the op with that External id (the innermost op that launched it)."""
    def ints(frame: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
        column = frame[col]
        return column.to_numpy(dtype="int64", na_value=0), column.notna().to_numpy()

    rows = np.full(len(kernels), -1, dtype=np.int64)
    rt_corr, rt_has_corr = ints(runtime, "correlation")
    rt_ext, rt_has_ext = ints(runtime, "external_id")
    rt_ok = rt_has_corr & rt_has_ext
    op_ext, op_ok = ints(ops, "external_id")
    if not rt_ok.any() or not op_ok.any():  # e.g. MTIA's runtime calls carry no External id
        return rows
    corr, ok = ints(kernels, Col.CORRELATION)
    # correlation -> External id (first runtime call of a correlation id wins)
    pos = lookup_rows(rt_corr[rt_ok], corr[ok], keep="first")
    ext = np.where(pos >= 0, rt_ext[rt_ok][np.maximum(pos, 0)], -1)
    # External id -> op row (the last op of an External id wins)
    at = lookup_rows(op_ext[op_ok], ext, keep="last")
    rows[np.flatnonzero(ok)] = np.where((pos >= 0) & (at >= 0),
                                        np.flatnonzero(op_ok)[np.maximum(at, 0)], -1)
    return rows


def op_shape_costs(kernels: pd.DataFrame, ops: pd.DataFrame, runtime: pd.DataFrame
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-kernel (flops, bytes) from the parent ops' recorded shapes; NaN where unknown.
    Vectorized over kernels; each distinct (op, shapes) is costed once."""
    n = len(kernels)
    flops, nbytes = np.full(n, np.nan), np.full(n, np.nan)
    if "input_dims" not in ops or "correlation" not in runtime:
        return flops, nbytes
    rows = _kernel_op_rows(kernels, ops, runtime)
    linked = np.flatnonzero(rows >= 0)
    if not len(linked):
        return flops, nbytes
    used, pos = np.unique(rows[linked], return_inverse=True)
    op_cost_rows = _op_costs(ops, used)  # per used op: flops, bytes, aux flops, aux bytes, anchor
    dur = np.nan_to_num(kernels[Col.DUR_NS].to_numpy(dtype="float64", na_value=np.nan))[linked]
    classes = anchor_classes(kernels)[linked]
    is_main = np.isin(classes, ANCHOR_KINDS)
    is_aux = classes == "aux"
    anchor_op = op_cost_rows["anchor"][pos]
    has_main = np.bincount(pos, weights=is_main, minlength=len(used))[pos] > 0
    # An anchor op's cost goes to its GEMM/attention kernel(s), a split-K reduce gets its own
    # lower bound, anything else it launched (a memset) nothing; other ops: all their kernels.
    share_main = np.where(anchor_op, is_main & has_main, True)
    share_aux = anchor_op & is_aux & has_main
    for mask, f_key, b_key in ((share_main, "flops", "bytes"),
                               (share_aux, "aux_flops", "aux_bytes")):
        weight = _duration_shares(pos, mask, dur, len(used))
        hit = linked[mask]
        flops[hit] = op_cost_rows[f_key][pos[mask]] * weight[mask]
        nbytes[hit] = op_cost_rows[b_key][pos[mask]] * weight[mask]
    return flops, nbytes


def _duration_shares(group: np.ndarray, mask: np.ndarray, dur: np.ndarray, groups: int
                     ) -> np.ndarray:
    """Each masked member's share of its group (by duration; equal when no duration)."""
    total = np.bincount(group, weights=np.where(mask, dur, 0.0), minlength=groups)[group]
    count = np.bincount(group, weights=mask.astype(float), minlength=groups)[group]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, dur / total, 1.0 / count)


def _op_costs(ops: pd.DataFrame, used: np.ndarray) -> dict[str, np.ndarray]:
    """Cost of each used op, computed once per distinct (name, dims, types, concrete inputs)."""
    columns = ["name"] + [c for c in ("input_dims", "input_types", "concrete_inputs")]
    parts = []  # per column: (codes of the used ops, their texts; "" where missing)
    for col in columns:
        if col not in ops:
            parts.append((np.zeros(len(used), dtype=np.int64), np.array([""], dtype=object)))
            continue
        codes, values = value_codes(ops[col])
        # last: a missing value (the name as str() of NaN writes it; a shape text as "")
        texts = np.array([(str(v) if col == "name" else v if isinstance(v, str) else "")
                          for v in values] + ["nan" if col == "name" else ""], dtype=object)
        parts.append((codes[used], texts))
    out = {k: np.full(len(used), np.nan) for k in ("flops", "bytes", "aux_flops", "aux_bytes")}
    out["anchor"] = np.zeros(len(used), dtype=bool)
    if not len(used):
        return out
    which, keys = _distinct_rows([(codes, len(texts)) for codes, texts in parts])
    costs = np.empty((len(keys), 5))
    for i, key in enumerate(keys):
        cost = _cost_of(*(texts[code] for (_, texts), code in zip(parts, key, strict=True)))
        aux_f, aux_b = aux_kernel_cost(vars(cost))  # flat fields: asdict's deep copy not needed
        costs[i] = (_nan(cost.flops), _nan(cost.bytes), _nan(aux_f), _nan(aux_b),
                    cost.kind in ANCHOR_KINDS)
    for j, k in enumerate(("flops", "bytes", "aux_flops", "aux_bytes")):
        out[k] = costs[which, j]
    out["anchor"] = costs[which, 4].astype(bool)
    return out


def _distinct_rows(columns: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row -> distinct id, distinct rows as code tuples) of equal-length code columns, each
    code in [-1, size - 1)."""
    stacked = np.stack([codes for codes, _ in columns], axis=1)
    span = 1
    for _, size in columns:
        span *= size + 1
    if span < 2**62:  # one integer key per row: hashing, not a sort of rows
        key = np.zeros(len(stacked), dtype=np.int64)
        for codes, size in columns:
            key = key * (size + 1) + (codes + 1)
        which = pd.factorize(key)[0]
        first = np.unique(which, return_index=True)[1]  # a row of each, in id order
        return which, stacked[first]
    keys, which = np.unique(stacked, axis=0, return_inverse=True)
    return np.asarray(which).reshape(-1), keys


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)
