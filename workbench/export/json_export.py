"""JSON export of a run record and/or its analysis, in the schema documented in README.md
("JSON export"). DataFrames become lists of records; missing values become null."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from analyzers.run_analysis import RunAnalysis

SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # DataFrame
        return [_clean(r) for r in value.to_dict(orient="records")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _clean(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
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
        "roofline": _clean(analysis.roofline),
        "roofline_aggregate": _clean(analysis.roofline_aggregate),
        "ceilings": _clean(analysis.ceilings),
        "advice": _clean(analysis.advice),
        "regions": _clean(analysis.regions),
        "notes": list(analysis.notes),
    }


def dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, default=str) + "\n"
