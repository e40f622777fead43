"""Per-kernel FLOPs and bytes from the run's operation inventory, matched by launch order.

Pure: a KernelTable and a decoded ``workloads.inventory_format.Inventory`` in, arrays out.

Why launch order: inside a CUDA graph (L4) the profiler records kernels with no parent op, and
compiled code (L5) launches Triton kernels that no aten op owns — there are no shapes to read.
But the GEMMs and the attention kernels of a step still run one per op, in the order the
eager step called them. So:

- anchors: the trace's GEMM / GEMV and attention kernels (by name: a Triton *fused* kernel whose
  name mentions ``gemv`` or ``attention`` is element-wise work, not an anchor) are paired in order
  with the inventory's GEMM / attention ops, one step at a time; each gets its op's FLOPs and
  bytes. A split-K reduce (or an attention combine) kernel after it gets the lower bound of
  its own work (``aux_kernel_cost``).
- the kernels between two anchors (norms, RoPE, residual adds, whatever the compiler fused) share
  the bytes and FLOPs of the inventory's non-anchor ops between the two matching ops, split by
  duration (eager ops counted one by one: for fused kernels an upper bound of their traffic).
- steps: the anchor sequence repeats once per profiled step; kernels between the last anchor of
  one step and the first of the next are cut at the largest idle gap (or by the step windows
  when the caller has them).

Honesty checks: a step must repeat the inventory's anchor kinds exactly, and every distinct
inventory GEMM / attention shape must land on one kernel name across the run (cuBLAS picks one
kernel per shape) — a shifted alignment breaks that. If either fails, nothing is assigned and
the note says why; the inventory's per-class totals are still reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers.schema import Category, Col
from workloads.inventory_format import Inventory

# Kernel categories that anchor the match; the inventory names its ops by the same words.
ANCHOR_KINDS = (Category.GEMM, Category.ATTENTION)
# Inductor's fused element-wise kernels (whatever ops their names list), and the argument set-up
# kernel torch._grouped_mm launches before each grouped GEMM: GEMM-named, not GEMMs.
_NOT_ANCHOR = re.compile(r"^triton_(poi|red|per)_|prepare_grouped_gemm_data")
_AUX = re.compile(r"splitkreduce|splitk_reduce|reduce_kernel|combine", re.I)
_MAX_ANCHORS = 2_000_000  # beyond this the O(steps x anchors) search is not attempted
_CODE = {Category.GEMM: 1, Category.ATTENTION: 2}


@dataclass
class InventoryMatch:
    flops: np.ndarray  # per KernelTable row; NaN = not assigned
    dram_bytes: np.ndarray
    steps_matched: int = 0
    anchors_per_step: int = 0
    notes: list[str] = field(default_factory=list)
    class_totals: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def assigned(self) -> np.ndarray:
        return ~np.isnan(self.flops) | ~np.isnan(self.dram_bytes)


def kernel_anchor_class(name: str, category: str | None) -> str | None:
    """gemm | attention | aux (split-K reduce, attention combine) | None (not an anchor)."""
    if _NOT_ANCHOR.search(name) or category not in ANCHOR_KINDS:
        return None
    if _AUX.search(name):
        return "aux"
    return category


def class_totals(inventory: Inventory) -> dict[str, dict[str, float | None]]:
    """FLOPs and bytes of one step per op kind (None where an op's figure is unknown)."""
    totals: dict[str, dict[str, float | None]] = {}
    for position in range(len(inventory)):
        row = inventory.op(position)
        entry = totals.setdefault(str(row.get("kind")), {"flops": 0.0, "bytes": 0.0, "ops": 0})
        entry["ops"] = (entry["ops"] or 0) + 1
        for key in ("flops", "bytes"):
            value = row.get(key)
            entry[key] = None if value is None or entry[key] is None else entry[key] + value
    return totals


def totals_note(totals: dict[str, dict[str, float | None]]) -> str:
    """The inventory's step totals per op kind, for a note when kernels cannot be matched."""
    def fmt(value: float | None, unit: str) -> str:
        return "n/a" if value is None else f"{value / 1e9:.3g} {unit}"

    parts = [f"{kind} {fmt(t.get('flops'), 'GFLOP')} / {fmt(t.get('bytes'), 'GB')}"
             for kind, t in sorted(totals.items(), key=lambda kv: -(kv[1].get("bytes") or 0))]
    return "the inventory's step totals: " + "; ".join(parts)


def anchor_classes(kernels: pd.DataFrame) -> np.ndarray:
    names = kernels[Col.NAME]
    codes = names.cat.codes.to_numpy() if hasattr(names, "cat") else None
    if codes is None:
        cats = kernels[Col.CATEGORY].astype("object").to_numpy()
        return np.array([kernel_anchor_class(str(n), c) for n, c in zip(names, cats, strict=True)],
                        dtype=object)
    # Category depends on the name only: classify each distinct name once, with the category
    # of its first launch (only those rows are read as objects, not one per launch).
    n_names = len(names.cat.categories)
    first = np.full(n_names + 1, -1, dtype=np.int64)  # last slot: launches without a name
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write: the first launch
    used = np.flatnonzero(first[:n_names] >= 0)
    cats = kernels[Col.CATEGORY].iloc[first[used]].astype("object").to_numpy()
    by_code = np.full(n_names + 1, None, dtype=object)  # last: no name
    for code, cat in zip(used.tolist(), cats, strict=True):
        by_code[code] = kernel_anchor_class(str(names.cat.categories[code]), cat)
    return by_code[codes]


def _find_steps(trace_kinds: np.ndarray, inv_kinds: np.ndarray) -> tuple[list[int], int]:
    """Start offsets (into the trace's anchors) of each exact repeat of the inventory's anchor
    kinds, greedily left to right; and how many trace anchors fell outside every repeat."""
    a, t = len(inv_kinds), len(trace_kinds)
    starts: list[int] = []
    p = skipped = 0
    while p + a <= t:
        if np.array_equal(trace_kinds[p:p + a], inv_kinds):
            starts.append(p)
            p += a
        else:
            p += 1
            skipped += 1
    return starts, skipped + (t - p)


def share_by_duration(total: float | None, durations: np.ndarray) -> np.ndarray:
    if total is None:
        return np.full(len(durations), np.nan)
    weights = np.nan_to_num(durations, nan=0.0)
    whole = weights.sum()
    if whole <= 0:
        return np.full(len(durations), total / len(durations))
    return total * weights / whole


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else np.nan


def aux_kernel_cost(op: dict[str, Any]) -> tuple[float | None, float | None]:
    """A split-K reduce / attention combine kernel: it adds at least two fp32 partial results
    of the op's output and writes the output once (a lower bound: the split count is not
    known). The op's own FLOPs and bytes stay on its main kernel."""
    if op.get("kind") == "gemm":
        parts = [op.get("batch"), op.get("m"), op.get("n")]
    else:
        parts = [op.get("batch"), op.get("heads"), op.get("q_len"), op.get("head_dim")]
    sizes = [p for p in parts if isinstance(p, int)]
    if len(sizes) != len(parts):
        return None, None
    elems = float(math.prod(sizes))
    out_size = 1 if op.get("dtype") == "fp8" else 4 if op.get("dtype") == "fp32" else 2
    return elems, elems * (2 * 4 + out_size)


def _segment_sum(inventory: Inventory, lo: int, hi: int, key: str) -> float | None:
    total = 0.0
    for position in range(lo, hi):
        value = inventory.op(position).get(key)
        if value is None:
            return None
        total += float(value)
    return total


def match_inventory(kernels: pd.DataFrame, inventory: Inventory,
                    step_windows: list[tuple[int, int]] | None = None) -> InventoryMatch:
    """Assign FLOPs / DRAM bytes to the kernels of ``kernels`` (a KernelTable) from
    ``inventory``. ``step_windows``: (start_ns, end_ns) of each profiled step where known."""
    n = len(kernels)
    result = InventoryMatch(np.full(n, np.nan), np.full(n, np.nan),
                            class_totals=class_totals(inventory))
    notes = result.notes
    if inventory.truncated:
        notes.append("the inventory is partial (the step has more ops than it keeps): not matched")
        return result
    inv_anchor_pos = np.array([i for i in range(len(inventory))
                               if inventory.op(i).get("kind") in ANCHOR_KINDS], dtype=np.int64)
    if len(inv_anchor_pos) == 0:
        notes.append("the inventory has no GEMM or attention op to anchor the kernels on")
        return result
    start = kernels[Col.START_NS].to_numpy(dtype="float64", na_value=np.nan)
    dur = kernels[Col.DUR_NS].to_numpy(dtype="float64", na_value=np.nan)
    order = np.argsort(np.where(np.isnan(start), np.inf, start), kind="stable")
    order = order[~np.isnan(start[order])]
    classes = anchor_classes(kernels)[order]
    names = kernels[Col.NAME].astype("object").to_numpy()[order]
    inv_has_attention = any(inventory.op(int(i)).get("kind") == "attention" for i in inv_anchor_pos)
    if not inv_has_attention and (classes == "attention").any():
        # An inventory that recorded no attention op (one written before it knew a custom
        # decode attention): the attention kernels are not anchors; they share the in-between
        # ops' traffic like the other non-anchor kernels, and the note says so.
        classes = np.where(np.isin(classes, ("attention", "aux")) & (classes == "attention"),
                           None, classes)
        notes.append("the inventory holds no attention op: the trace's attention kernels share "
                     "the traffic of the ops between the GEMMs instead of an attention op's own")
    is_anchor = np.isin(classes, ANCHOR_KINDS)
    anchor_idx = np.flatnonzero(is_anchor)  # positions (in ``order``) of the trace's anchors
    if len(anchor_idx) > _MAX_ANCHORS:
        notes.append(f"{len(anchor_idx):,} GEMM/attention kernels: too many to match by order")
        return result
    trace_kinds = np.array([_CODE[c] for c in classes[anchor_idx]], dtype=np.int8)
    inv_kinds = np.array([_CODE[inventory.op(i)["kind"]] for i in inv_anchor_pos], dtype=np.int8)
    starts, outside = _find_steps(trace_kinds, inv_kinds)
    a = len(inv_kinds)
    result.anchors_per_step = a
    if not starts:
        n_gemm, n_attn = int((trace_kinds == 1).sum()), int((trace_kinds == 2).sum())
        notes.append(
            f"the trace's GEMM/attention kernels ({n_gemm} GEMM, {n_attn} attention) do not "
            f"repeat the inventory's {int((inv_kinds == 1).sum())} GEMM + "
            f"{int((inv_kinds == 2).sum())} attention ops per step: kernels not matched")
        notes.append(totals_note(result.class_totals))
        return result
    # Consistency: each distinct GEMM/attention row of the inventory on one kernel name.
    seen: dict[int, set[str]] = {}
    for s in starts:
        for j in range(a):
            row_id = inventory.order[inv_anchor_pos[j]]
            seen.setdefault(row_id, set()).add(names[anchor_idx[s + j]])
    split = {r: v for r, v in seen.items() if len(v) > 1}
    if split:
        row = inventory.rows[next(iter(split))]
        notes.append(f"{len(split)} of {len(seen)} inventory GEMM/attention shapes land on "
                     f"several kernel names (e.g. {row.get('op')} m={row.get('m')} "
                     f"n={row.get('n')} k={row.get('k')} -> {sorted(split[next(iter(split))])[:2]})"
                     ": the alignment is not trusted, kernels not matched")
        notes.append(totals_note(result.class_totals))
        return result

    bounds = _step_bounds(starts, a, anchor_idx, start, dur, order, step_windows)
    flops_o = np.full(len(order), np.nan)
    bytes_o = np.full(len(order), np.nan)
    unplaced = 0.0
    aux = classes == "aux"
    for s, (lo, hi) in zip(starts, bounds, strict=True):
        pos = anchor_idx[s:s + a]
        for j in range(a):  # the anchor and the aux kernels after it
            op = inventory.op(int(inv_anchor_pos[j]))
            end = pos[j + 1] if j + 1 < a else hi
            flops_o[pos[j]], bytes_o[pos[j]] = _num(op.get("flops")), _num(op.get("bytes"))
            helpers = pos[j] + 1 + np.flatnonzero(aux[pos[j] + 1:end])
            if len(helpers):
                aux_flops, aux_bytes = aux_kernel_cost(op)
                flops_o[helpers] = share_by_duration(aux_flops, dur[order[helpers]])
                bytes_o[helpers] = share_by_duration(aux_bytes, dur[order[helpers]])
        edges = [(lo, pos[0], 0, int(inv_anchor_pos[0]))]
        edges += [(pos[j], pos[j + 1], int(inv_anchor_pos[j]) + 1, int(inv_anchor_pos[j + 1]))
                  for j in range(a - 1)]
        edges.append((pos[-1], hi, int(inv_anchor_pos[-1]) + 1, len(inventory)))
        for k_lo, k_hi, i_lo, i_hi in edges:
            inside = np.arange(k_lo, k_hi)
            inside = inside[~is_anchor[inside] & ~aux[inside]]
            seg_bytes = _segment_sum(inventory, i_lo, i_hi, "bytes")
            if len(inside) == 0:
                unplaced += seg_bytes or 0.0
                continue
            if i_lo >= i_hi:
                continue  # kernels the inventory has no op for: stay unknown
            flops_o[inside] = share_by_duration(_segment_sum(inventory, i_lo, i_hi, "flops"),
                                     dur[order[inside]])
            bytes_o[inside] = share_by_duration(seg_bytes, dur[order[inside]])
    result.flops[order] = flops_o
    result.dram_bytes[order] = bytes_o
    result.steps_matched = len(starts)
    notes.append(f"FLOPs and bytes from the run's operation inventory: {len(starts)} profiled "
                 f"step(s) matched by launch order ({a} GEMM/attention anchors each); "
                 "kernels between anchors share the eager ops' traffic by duration")
    if outside:
        notes.append(f"{outside} GEMM/attention kernels lie outside the matched steps "
                     "(no inventory figures)")
    if unplaced and len(starts):
        notes.append(f"{unplaced / len(starts) / 1e6:.3g} MB per step of element-wise traffic "
                     "has no kernel of its own (fused into a neighbour)")
    return result


def _step_bounds(starts: list[int], a: int, anchor_idx: np.ndarray, start: np.ndarray,
                 dur: np.ndarray, order: np.ndarray,
                 step_windows: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """[lo, hi) kernel positions (in ``order``) of each matched step."""
    count = len(order)
    t_start, t_end = start[order], start[order] + np.nan_to_num(dur[order])
    if step_windows:
        out = []
        for s in starts:
            first, last = anchor_idx[s], anchor_idx[s + a - 1]
            window = next(((w0, w1) for w0, w1 in step_windows
                           if w0 <= t_start[first] and t_start[last] < w1), None)
            if window is None:
                out.append((first, last + 1))
                continue
            lo = int(np.searchsorted(t_start, window[0], side="left"))
            hi = int(np.searchsorted(t_start, window[1], side="left"))
            out.append((min(lo, first), max(hi, last + 1)))
        return out
    cuts = [0]
    for s_prev, s_next in zip(starts, starts[1:], strict=False):
        last, first = anchor_idx[s_prev + a - 1], anchor_idx[s_next]
        # Candidate cuts: before each kernel in (last, first]; the widest idle gap wins.
        cand = np.arange(last + 1, first + 1)
        idle = t_start[cand] - np.maximum.accumulate(t_end[last:first])
        cuts.append(int(cand[int(np.argmax(idle))]))
    cuts.append(count)
    return [(cuts[i], cuts[i + 1]) for i in range(len(starts))]

