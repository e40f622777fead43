"""Number formatting for the screens. A missing value is "n/a", never 0 and never a crash."""

from __future__ import annotations

import math
from typing import Any

NA = "n/a"


def is_missing(value: Any) -> bool:
    """None, NaN (float or numpy), pandas NA / NaT. No pandas import: the setup screen uses
    this module and the app's first paint must not wait for pandas."""
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, str, bool)):
        return False
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return math.isnan(value)
    except (TypeError, ValueError, OverflowError):
        return str(value) == "NaT"  # numpy datetime64/timedelta64 NaT


def _num(value: Any) -> float | None:
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def fmt_count(value: Any) -> str:
    number = _num(value)
    return NA if number is None else f"{number:,.0f}"


def fmt_float(value: Any, digits: int = 2, unit: str = "") -> str:
    number = _num(value)
    if number is None:
        return NA
    return f"{number:,.{digits}f}{(' ' + unit) if unit else ''}"


def fmt_si(value: Any, unit: str = "", digits: int = 3) -> str:
    """1.23e12, 'FLOP/s' -> '1.23 TFLOP/s'."""
    number = _num(value)
    if number is None:
        return NA
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= factor:
            return f"{number / factor:.{digits}g} {prefix}{unit}"
    return f"{number:.{digits}g} {unit}".rstrip()


def fmt_bytes(value: Any) -> str:
    number = _num(value)
    if number is None:
        return NA
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(number) >= factor:
            return f"{number / factor:.2f} {unit}"
    return f"{number:.0f} B"


def fmt_ns(value: Any) -> str:
    number = _num(value)
    if number is None:
        return NA
    for factor, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if abs(number) >= factor:
            return f"{number / factor:,.2f} {unit}"
    return f"{number:.0f} ns"


def fmt_pct(value: Any, digits: int = 1, signed: bool = False) -> str:
    number = _num(value)
    if number is None:
        return NA
    return f"{number * 100:{'+' if signed else ''}.{digits}f}%"


def fmt_shape(value: Any) -> str:
    if value is None or is_missing(value):
        return NA
    if isinstance(value, (tuple, list)):
        return "×".join(str(v) for v in value)
    return str(value)
