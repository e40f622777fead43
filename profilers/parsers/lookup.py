"""Row lookups by integer or float id (correlation ids, External ids) over 10^5-10^6 rows.

Numpy only (the parsers run it before pandas is imported). Sort-based: ids in a trace are
nearly sorted, so the stable sort is close to linear, and a binary search per lookup beats a
pandas hash index 2-3x at a million ids. Keys already in order (a trace's External ids and
correlation ids usually are) skip the sort, and keys without duplicates skip the compaction:
on a 1 GB trace the sort and its copies were half of each lookup.
"""

from __future__ import annotations

import numpy as np


def lookup_rows(keys: np.ndarray, wanted: np.ndarray, keep: str = "first") -> np.ndarray:
    """For each wanted key, the row of ``keys`` holding it (the first or last of duplicates),
    else -1. A NaN key is never found."""
    keys, wanted = np.asarray(keys), np.asarray(wanted)
    if not len(keys) or not len(wanted):
        return np.full(len(wanted), -1, dtype=np.int64)
    # NaN compares False: keys holding one are never "in order" and take the sort
    in_order = bool((keys[1:] >= keys[:-1]).all())
    order = None if in_order else np.argsort(keys, kind="stable")
    ordered = keys if order is None else keys[order]
    same = ordered[1:] == ordered[:-1]
    rows: np.ndarray | None = order  # None: the row is the position
    if same.any():
        # of a run of equal keys (kept in row order by the stable sort), keep its first or last
        unique = np.concatenate(([True], ~same)) if keep == "first" \
            else np.concatenate((~same, [True]))
        rows = np.flatnonzero(unique) if order is None else order[unique]
        ordered = ordered[unique]
    pos = np.searchsorted(ordered, wanted)
    np.minimum(pos, len(ordered) - 1, out=pos)
    hit = ordered[pos] == wanted
    at = pos if rows is None else rows[pos]
    return np.where(hit, at, -1).astype(np.int64, copy=False)
