"""Grouping helpers over integer codes (numpy only: no pandas at import)."""

from __future__ import annotations

import numpy as np


def group_mode(codes: np.ndarray, values: np.ndarray, weight: np.ndarray,
               groups: int) -> np.ndarray:
    """Per group, the value (a small code, -1 allowed) covering the most time. Most kernels
    have one value for all their launches: their first launch's value is taken without the
    group x value table, which is built only for the groups that disagree."""
    values = values.astype(np.int64, copy=False)
    if not len(codes):
        return np.full(groups, -1, dtype=np.int64)
    first = np.full(groups, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first launch
    out = np.where(first >= 0, values[np.maximum(first, 0)], -1)
    differs = values != out[codes]
    if not differs.any():
        return out
    mixed = np.unique(codes[differs])
    sel = np.isin(codes, mixed)
    local = np.searchsorted(mixed, codes[sel])
    shifted = values[sel] + 1
    width = int(shifted.max()) + 1
    table = np.bincount(local * width + shifted, weights=weight[sel] + 1e-9,
                        minlength=len(mixed) * width).reshape(len(mixed), width)
    out[mixed] = np.argmax(table, axis=1) - 1
    return out
