"""Number formatting shared by the Markdown/JSON exports and the app. Missing is "n/a"."""

from __future__ import annotations

import math
from typing import Any

from workbench.export.escape import md_text

NA = "n/a"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(math.isnan(value))
    except (TypeError, ValueError):
        return value is getattr(__import__("pandas"), "NA", object())


def fmt_num(value: Any, digits: int = 3, unit: str = "") -> str:
    """``digits`` significant digits; thousands separators from 1,000 up; n/a when missing."""
    if is_missing(value):
        return NA
    value = float(value)
    magnitude = abs(value)
    if value != 0 and (magnitude >= 1e9 or magnitude < 10 ** -digits):
        text = f"{value:.{digits}g}"
    elif magnitude >= 1000:
        text = f"{value:,.0f}"
    elif value == 0:
        text = "0"
    else:
        decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
        text = f"{value:.{decimals}f}"
        if "." in text:  # 2.000 -> 2, 0.400 -> 0.4 (as %g would, without exponents)
            text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}".rstrip()


def fmt_ns(ns: Any) -> str:
    """A duration in ns in the most readable unit."""
    if is_missing(ns):
        return NA
    ns = float(ns)
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}" if abs(ns) / scale < 100 else f"{ns / scale:.1f} {unit}"
    return f"{ns:.0f} ns"


def fmt_pct(share: Any, digits: int = 1) -> str:
    return NA if is_missing(share) else f"{float(share) * 100:.{digits}f}%"


def fmt_bytes(n: Any) -> str:
    if is_missing(n):
        return NA
    n = float(n)
    for scale, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(per_s: Any, unit: str) -> str:
    """FLOP/s or B/s with an SI prefix: 7.8e14 -> '780 TFLOP/s'."""
    if is_missing(per_s):
        return NA
    v = float(per_s)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"


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
