"""JSON export of a run record and/or its analysis, in the schema documented in README.md
("JSON export"). DataFrames become lists of records; missing values become null.

Serialization is orjson's: the section functions below hand over the analysis objects as they
are (``_clean`` no longer walks them in Python), and ``dumps`` converts DataFrames column by
column, dataclasses, numpy and pandas scalars natively or in ``_default``; NaN / inf become
null. A value orjson cannot take (an int beyond 64 bits, a key of an odd type) sends the whole
object through the slow, exhaustive ``_clean_deep`` walk instead — same output, slower.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import orjson

from analyzers.run_analysis import RunAnalysis

SCHEMA_VERSION = 1
_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _clean(value: Any) -> Any:
    """A section's value, ready for ``dumps``: returned as is (``dumps`` converts it)."""
    return value


def _column_values(column: Any) -> list[Any]:
    """One DataFrame column as Python values, missing ones None (NaN floats stay NaN: null)."""
    values = column.array
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.tolist()  # type: ignore[no-any-return]
    return column.to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[no-any-return]


def _records(frame: Any) -> list[dict[str, Any]]:
    names = [str(c) for c in frame.columns]
    columns = [_column_values(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _default(value: Any) -> Any:
    """What orjson does not serialize itself."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # DataFrame
        return _records(value)
    if value is __import__("pandas").NA or value is __import__("pandas").NaT:
        return None
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy / pandas scalar
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)  # as json.dumps(default=str) did: Paths, Decimals, enums of odd types


def _clean_deep(value: Any) -> Any:
    """The exhaustive walk: every container rebuilt with str keys and plain values."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # DataFrame
        return [_clean_deep(r) for r in _records(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _clean_deep(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _clean_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_deep(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalar
        return _clean_deep(value.item())
    if value is __import__("pandas").NA:
        return None
    return value


def analysis_to_dict(analysis: RunAnalysis) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "source": analysis.source,
        "kernel_count": analysis.kernel_count,
        "kernel_total_ns": analysis.kernel_total_ns,
        "categories": _clean(analysis.categories),
        "top_kernels": _clean(analysis.top_kernels),
        "ops": _clean(analysis.ops),
        "streams": _clean(analysis.streams),
        "temporal": _clean(analysis.temporal),
        "roofline": _clean(analysis.roofline),  # one row per kernel name
        "roofline_aggregate": _clean(analysis.roofline_aggregate),
        "budget": _clean(analysis.budget),
        "ceilings": _clean(analysis.ceilings),
        "advice": _clean(analysis.advice),
        "regions": _clean(analysis.regions),
        "notes": list(analysis.notes),
    }


def dumps(obj: Any) -> str:
    try:
        raw = orjson.dumps(obj, default=_default, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        raw = orjson.dumps(_clean_deep(obj), default=_default, option=_OPTIONS)
    return raw.decode("utf-8") + "\n"
