"""Number formatting for every output: the Markdown/JSON exports, the CLI's lines and the
app's screens print the same value the same way. A missing value is "n/a", never 0 and never a
crash. No pandas import: the app's setup screen uses this and its first paint must not wait."""

from __future__ import annotations

import math
from typing import Any

from workbench.export.escape import md_text

NA = "n/a"


def is_missing(value: Any) -> bool:
    """None, NaN (float or numpy), pandas NA / NaT."""
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


def number(value: Any) -> float | None:
    """A finite float, or None for anything missing or not a number (bools are not)."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def fmt_num(value: Any, digits: int = 3, unit: str = "") -> str:
    """``digits`` significant digits; thousands separators from 1,000 up; n/a when missing."""
    v = number(value)
    if v is None:
        return NA
    magnitude = abs(v)
    if v != 0 and (magnitude >= 1e9 or magnitude < 10 ** -digits):
        text = f"{v:.{digits}g}"
    elif magnitude >= 1000:
        text = f"{v:,.0f}"
    elif v == 0:
        text = "0"
    else:
        decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
        text = f"{v:.{decimals}f}"
        if "." in text:  # 2.000 -> 2, 0.400 -> 0.4 (as %g would, without exponents)
            text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}".rstrip()


def fmt_exact(value: Any) -> str:
    """A figure compared with another to the last digit (ours vs HTA's): whole numbers as
    integers, others to 0.1 from 1,000 up, else 4 significant digits."""
    v = number(value)
    if v is None:
        return NA
    if v.is_integer():
        return f"{int(v):,}"
    return f"{v:,.1f}" if abs(v) >= 1000 else f"{v:.4g}"


def fmt_count(value: Any) -> str:
    v = number(value)
    return NA if v is None else f"{v:,.0f}"


def fmt_float(value: Any, digits: int = 2, unit: str = "") -> str:
    v = number(value)
    if v is None:
        return NA
    return f"{v:,.{digits}f}{(' ' + unit) if unit else ''}"


def fmt_ns(ns: Any) -> str:
    """A duration given in ns, in the most readable unit: 3 significant digits below 100 of
    it, one decimal above (5.07 ms, 772.9 µs, 480 ns)."""
    v = number(ns)
    if v is None:
        return NA
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if abs(v) >= scale:
            scaled = v / scale
            return f"{scaled:.3g} {unit}" if abs(scaled) < 100 else f"{scaled:,.1f} {unit}"
    return f"{v:.0f} ns"


def fmt_pct(share: Any, digits: int = 1, signed: bool = False) -> str:
    """A fraction (0..1) as a percentage."""
    v = number(share)
    return NA if v is None else f"{v * 100:{'+' if signed else ''}.{digits}f}%"


def fmt_bytes(n: Any) -> str:
    v = number(n)
    if v is None:
        return NA
    for scale, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.0f} B"


def fmt_rate(per_s: Any, unit: str = "", digits: int = 3) -> str:
    """A rate or a count with an SI prefix: 7.8e14, "FLOP/s" -> '780 TFLOP/s'."""
    v = number(per_s)
    if v is None:
        return NA
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g} {prefix}{unit}"
    return f"{v:.{digits}g} {unit}".rstrip()


def fmt_shape(value: Any) -> str:
    """A grid / block shape: (128, 1, 1) -> 128×1×1."""
    if value is None or is_missing(value):
        return NA
    if isinstance(value, (tuple, list)):
        return "×".join(str(v) for v in value)
    return str(value)


def md_escape(text: Any) -> str:
    """A cell for a Markdown table, kept literal (``escape.md_text``: no row split, no HTML,
    no link or image, no control characters)."""
    return md_text(text)


def md_table(headers: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def shorten(name: str, width: int = 90) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
