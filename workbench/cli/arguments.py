"""argparse types shared by the commands: KEY=VALUE parameters (``workbench.api.params``, the
one parser), sizes, the session home. A bad value is argparse's one-line error, exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.api.params import parse_param, parse_values
from workloads.errors import WorkbenchError


def param(text: str) -> tuple[str, Any]:
    """--param KEY=VALUE (ints and floats typed, the rest text)."""
    try:
        return parse_param(text)
    except WorkbenchError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def param_values(text: str) -> tuple[str, list[Any]]:
    """--param KEY=V1,V2,... (a sweep axis)."""
    try:
        return parse_values(text)
    except WorkbenchError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def home(text: str) -> Path:
    if not text.strip():  # Path("") is the current folder: never a silent session home
        raise argparse.ArgumentTypeError("--home must name a folder, got an empty string")
    return Path(text)


def size(text: str) -> int:
    """A count with an optional K/M/G suffix (powers of 1024), > 0."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        value = int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 500000)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value
