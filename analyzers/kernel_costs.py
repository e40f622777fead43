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
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from analyzers.inventory_match import (
    ANCHOR_KINDS,
    InventoryMatch,
    anchor_classes,
    aux_kernel_cost,
    match_inventory,
)
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
    n = len(out)
    notes: list[str] = []
    flops = out["flops"].to_numpy(dtype="float64", na_value=np.nan).copy()
    nbytes = out["dram_bytes"].to_numpy(dtype="float64", na_value=np.nan).copy()
    source = np.full(n, None, dtype=object)
    if "cost_source" in out:
        source[:] = out["cost_source"].astype("object").where(out["cost_source"].notna(), None)
    is_ncu = (out["source"].astype("object") == "ncu").to_numpy()
    source[is_ncu & (~np.isnan(flops) | ~np.isnan(nbytes)) & (source == None)] = "ncu"  # noqa: E711
    profiler_flops = np.where(is_ncu, np.nan, flops)
    flops[~is_ncu], nbytes[~is_ncu] = np.nan, np.nan
    open_rows = ~is_ncu & (out["source"].astype("object").isin(INVENTORY_SOURCES)).to_numpy()

    match: InventoryMatch | None = None
    if inventory is not None and open_rows.any():
        decoded, why = decode(inventory)
        if decoded is None:
            notes.append(f"no inventory costs: {why}")
        else:
            match = _match_per_rank(out, decoded, step_windows, notes)
            hit = open_rows & match.assigned
            flops[hit], nbytes[hit] = match.flops[hit], match.dram_bytes[hit]
            source[hit] = "inventory"
            open_rows &= ~hit
    if open_rows.any() and ops is not None and runtime is not None and len(ops):
        shape_flops, shape_bytes = op_shape_costs(out, ops, runtime)
        hit = open_rows & (~np.isnan(shape_flops) | ~np.isnan(shape_bytes))
        flops[hit], nbytes[hit] = shape_flops[hit], shape_bytes[hit]
        source[hit] = "op_shapes"
        open_rows &= ~hit
        if hit.any():
            notes.append(f"FLOPs/bytes of {int(hit.sum()):,} kernels from their aten op's "
                         "recorded shapes")
    with_flops = open_rows & ~np.isnan(profiler_flops)
    flops[with_flops] = profiler_flops[with_flops]
    source[with_flops] = "with_flops"
    out["flops"] = pd.array(np.where(np.isnan(flops), None, flops), dtype="Float64")
    out["dram_bytes"] = pd.array(np.where(np.isnan(nbytes), None, nbytes), dtype="Float64")
    from profilers.parsers.kernel_table import COST_SOURCES

    out["cost_source"] = pd.Categorical(source, categories=list(COST_SOURCES))
    coverage = _coverage(out)
    if coverage:
        notes.append(coverage)
    return out, notes, match


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
    by = kernels[Col.COST_SOURCE].astype("object").to_numpy()
    f_known = kernels[Col.FLOPS].notna().to_numpy()
    b_known = kernels[Col.DRAM_BYTES].notna().to_numpy()
    parts = [f"{s} {dur[by == s].sum() / total:.0%}" for s in dict.fromkeys(by) if pd.notna(s)]
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
    corr = kernels[Col.CORRELATION].to_numpy(dtype="float64", na_value=np.nan)
    rt = runtime[runtime["correlation"].notna() & runtime["external_id"].notna()]
    rt_ext = pd.Series(rt["external_id"].to_numpy(dtype="int64"),
                       index=rt["correlation"].to_numpy(dtype="int64"))
    rt_ext = rt_ext[~rt_ext.index.duplicated(keep="first")]
    op_ok = ops["external_id"].notna().to_numpy()
    op_row = pd.Series(np.flatnonzero(op_ok), index=ops["external_id"].to_numpy(
        dtype="float64", na_value=np.nan)[op_ok].astype("int64"))
    op_row = op_row[~op_row.index.duplicated(keep="last")]
    rows = np.full(len(kernels), -1, dtype=np.int64)
    if rt_ext.empty or op_row.empty:  # e.g. MTIA's runtime calls carry no External id
        return rows
    ok = ~np.isnan(corr)
    pos = rt_ext.index.get_indexer(corr[ok].astype("int64"))
    ext = np.where(pos >= 0, rt_ext.to_numpy()[np.maximum(pos, 0)], -1)
    at = op_row.index.get_indexer(ext)
    rows[np.flatnonzero(ok)] = np.where((pos >= 0) & (at >= 0), op_row.to_numpy()[np.maximum(at, 0)],
                                        -1)
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
    columns = [ops[c] if c in ops else None for c in ("input_dims", "input_types",
                                                      "concrete_inputs")]
    names = ops["name"].astype("object").to_numpy()[used]
    texts = [np.full(len(used), "", dtype=object) if c is None else
             c.astype("object").to_numpy()[used] for c in columns]
    out = {k: np.full(len(used), np.nan) for k in ("flops", "bytes", "aux_flops", "aux_bytes")}
    out["anchor"] = np.zeros(len(used), dtype=bool)
    memo: dict[tuple[str, ...], tuple[float, float, float, float, bool]] = {}
    for i in range(len(used)):
        key = (str(names[i]), *(t[i] if isinstance(t[i], str) else "" for t in texts))
        if key not in memo:
            cost = _cost_of(*key)
            aux_f, aux_b = aux_kernel_cost(asdict(cost))
            memo[key] = (_nan(cost.flops), _nan(cost.bytes), _nan(aux_f), _nan(aux_b),
                         cost.kind in ANCHOR_KINDS)
        (out["flops"][i], out["bytes"][i], out["aux_flops"][i], out["aux_bytes"][i],
         out["anchor"][i]) = memo[key]
    return out


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)
