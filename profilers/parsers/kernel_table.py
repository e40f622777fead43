"""The KernelTable: one columnar table of GPU activity, whatever tool recorded it.

A pandas DataFrame with the columns below (``name`` categorical, numbers in numpy dtypes,
missing values as NaN / <NA>, never 0). Every parser (Kineto, ncu, nsys) returns one, so
analyzers work the same on all of them. Row order is start time where known.

Totals are exact: ``kernel_table.dur_ns.sum()`` equals the raw sum of the kernel durations in
the artifact (Kineto stores microseconds with 3 decimals: we keep integer nanoseconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers.categories import categorize_names
from profilers.parsers.schema import Col

# column -> pandas dtype
COLUMNS: dict[str, str] = {
    Col.NAME: "category",
    Col.NAME_ID: "int32",  # index of name in the category list (stable within one table)
    Col.CATEGORY: "category",  # gemm, attention, moe_dispatch, norm, elementwise, ...
    Col.KIND: "category",  # kernel | memcpy | memset
    Col.STREAM: "Int64",
    Col.DEVICE: "Int64",
    Col.RANK: "Int64",
    Col.START_NS: "Int64",
    Col.DUR_NS: "Int64",
    Col.GRID: "object",  # (x, y, z) tuple or None
    Col.BLOCK: "object",
    Col.REGISTERS: "Int64",
    Col.SHARED_MEM: "Int64",
    Col.CORRELATION: "Int64",
    Col.OP_NAME: "object",  # parent CPU op (aten::mm ...) where known
    Col.FLOPS: "Float64",  # when known (torch with_flops on the parent op, ncu counters)
    Col.DRAM_BYTES: "Float64",  # when known (ncu)
    Col.SOURCE: "category",  # torch | ncu | nsys
    Col.COST_SOURCE: "category",  # where flops / dram_bytes came from (COST_SOURCES), <NA> unknown
}
# inventory: the run's operation inventory matched by launch order (analyzers.inventory_match);
# op_shapes: the parent aten op's recorded shapes; with_flops: the profiler's own FLOP count
# (no bytes); ncu: hardware counters.
COST_SOURCES = ("inventory", "op_shapes", "with_flops", "ncu")


def empty_kernel_table() -> pd.DataFrame:
    return make_kernel_table({}, source="torch")


def make_kernel_table(columns: dict[str, Any], source: str) -> pd.DataFrame:
    """Build a KernelTable from column arrays; absent columns become all-missing.

    ``columns`` must hold at least ``name`` and ``dur_ns`` of equal length (may be empty).
    ``category`` is derived from the names unless given; ``kind`` defaults to "kernel".
    """
    raw_names = columns.get("name", [])
    # A Categorical is taken as is (parsers of big traces intern names themselves).
    name_cat = raw_names if isinstance(raw_names, pd.Categorical) else pd.Categorical(list(raw_names))
    n = len(name_cat)
    data: dict[str, Any] = {}
    data["name"] = name_cat
    data["name_id"] = np.asarray(name_cat.codes, dtype="int32")
    kinds = columns.get("kind")
    if "category" in columns:
        data["category"] = pd.Categorical(columns["category"])
    else:
        data["category"] = categorize_names(name_cat, kinds)
    if isinstance(kinds, pd.Categorical):
        data["kind"] = kinds
    else:
        data["kind"] = pd.Categorical(list(kinds) if kinds is not None else ["kernel"] * n)
    for col, dtype in COLUMNS.items():
        if col in data:
            continue
        if col == "source":
            # codes, not a list of n strings to factorize (an empty table keeps no category)
            data[col] = (pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[source])
                         if n else pd.Categorical([]))
            continue
        if col == "cost_source":
            given = columns.get(col)
            data[col] = (pd.Categorical(list(given), categories=list(COST_SOURCES))
                         if given is not None else
                         pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8),
                                                   categories=list(COST_SOURCES)))
            continue
        values = columns.get(col)
        if values is None:
            data[col] = _all_missing(dtype, n)
        else:
            # copy=False: the parsers hand over arrays they no longer use; two copies of every
            # column (here and in the DataFrame) were a third of an nsys parse's peak memory.
            data[col] = (pd.array(values, dtype=dtype, copy=False) if dtype != "object"
                         else list(values))
    table = pd.DataFrame(data, columns=list(COLUMNS), copy=False)
    if len(table) != n:
        raise ValueError("column lengths differ")
    return table


def _all_missing(dtype: str, n: int) -> Any:
    """A column of ``n`` missing values of ``dtype`` (built from arrays, not n Nones)."""
    if dtype == "Int64":
        return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    if dtype == "Float64":
        return pd.arrays.FloatingArray(np.zeros(n, dtype=np.float64), np.ones(n, dtype=bool))
    if dtype == "object":
        return np.full(n, None, dtype=object)
    return pd.array([None] * n, dtype=dtype)


def concat_kernel_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate tables (e.g. per-rank traces), re-deriving categoricals and name ids."""
    if not tables:
        return empty_kernel_table()
    out = pd.concat(
        [t.astype({"name": "object", "category": "object", "kind": "object", "source": "object",
                   **({"cost_source": "object"} if "cost_source" in t else {})})
         for t in tables],
        ignore_index=True,
    )
    for col in ("name", "category", "kind", "source"):
        out[col] = pd.Categorical(out[col])
    if "cost_source" in out:
        out["cost_source"] = pd.Categorical(out["cost_source"], categories=list(COST_SOURCES))
    out["name_id"] = np.asarray(out["name"].cat.codes, dtype="int32")
    return out
