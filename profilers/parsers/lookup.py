"""Row lookups by integer or float id (correlation ids, External ids) over 10^5-10^6 rows.

Numpy only (the parsers run it before pandas is imported). Sort-based: ids in a trace are
nearly sorted, so the stable sort is close to linear, and a binary search per lookup beats a
pandas hash index 2-3x at a million ids.
"""

from __future__ import annotations

import numpy as np


def lookup_rows(keys: np.ndarray, wanted: np.ndarray, keep: str = "first") -> np.ndarray:
    """For each wanted key, the row of ``keys`` holding it (the first or last of duplicates),
    else -1. A NaN key is never found."""
    keys, wanted = np.asarray(keys), np.asarray(wanted)
    if not len(keys) or not len(wanted):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    # of a run of equal keys (kept in row order by the stable sort), keep its first or last row
    unique = np.concatenate(([True], ~same)) if keep == "first" else np.concatenate((~same, [True]))
    ordered, rows = ordered[unique], order[unique]
    pos = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    return np.where(ordered[pos] == wanted, rows[pos], -1).astype(np.int64, copy=False)
