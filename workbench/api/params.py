"""KEY=VALUE text (``--param``, ``--profiler-option``, ``--arch``, a sweep's values) as typed
values: the one parser the faces use."""

from __future__ import annotations

from typing import Any

from workloads.errors import WorkbenchError


def parse_value(text: str) -> Any:
    """"4" -> 4, "0.5" -> 0.5, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_param(text: str) -> tuple[str, Any]:
    """"batch=4" -> ("batch", 4)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise WorkbenchError(f"expected KEY=VALUE, got {text!r}", "e.g. --param batch=4")
    return key.strip(), parse_value(value)


def parse_values(text: str) -> tuple[str, list[Any]]:
    """"batch=1,2,4" -> ("batch", [1, 2, 4]) (a sweep axis)."""
    key, sep, values = text.partition("=")
    parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not parsed:
        raise WorkbenchError(f"expected KEY=V1,V2,..., got {text!r}", "e.g. --param batch=1,2,4")
    return key.strip(), parsed
