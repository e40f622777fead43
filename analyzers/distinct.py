"""Per distinct value, not per launch: a test or a lookup over a KernelTable column runs once
for each distinct name / category / op / shape and is spread to the rows by integer codes.

Why: a trace holds 10^5-10^6 launches of a few hundred distinct kernels. ``.astype(str)``,
``.str.contains`` or a Python function per launch cost seconds on a 1 GB trace; per distinct
value they cost microseconds, with the same answer row for row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def value_codes(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a column: ``values[codes[i]]`` is row i's value; code -1
    for a missing value (None / NaN / <NA>). A categorical column gives its own codes."""
    if isinstance(getattr(column, "dtype", None), pd.CategoricalDtype):
        cat = column.cat if isinstance(column, pd.Series) else column
        codes = np.asarray(cat.codes, dtype=np.int64)
        return codes, np.asarray(cat.categories, dtype=object)
    values = column.to_numpy(dtype=object) if hasattr(column, "to_numpy") else np.asarray(
        column, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def map_distinct(column: Any, fn: Callable[[Any], Any], missing: Any, dtype: Any = bool
                 ) -> np.ndarray:
    """``fn(value)`` for every row, computed once per distinct value; ``missing`` is the
    result for rows without a value."""
    codes, values = value_codes(column)
    out = np.empty(len(values) + 1, dtype=dtype)
    for i, value in enumerate(values):
        out[i] = fn(value)
    out[-1] = missing
    return out[codes]


def str_mask(column: Any, test: Callable[[str], Any], missing: bool = False) -> np.ndarray:
    """Row mask of ``test(str(value))``; ``missing`` for rows without a value (pandas'
    ``astype(str)`` keeps them missing, and a test on a missing value is False)."""
    return map_distinct(column, lambda v: bool(test(str(v))), missing)


def isin_mask(column: Any, wanted: tuple[str, ...] | list[str]) -> np.ndarray:
    """Row mask of ``column.astype(str).isin(wanted)``."""
    return str_mask(column, set(wanted).__contains__)

