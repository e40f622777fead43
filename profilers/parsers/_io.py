"""File checks shared by the parsers: every problem becomes a one-line WorkbenchError."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import BinaryIO

from workloads.errors import WorkbenchError

GZIP_MAGIC = b"\x1f\x8b"
SQLITE_MAGIC = b"SQLite format 3\x00"
NCU_REP_MAGIC = b"NVR\x00"


def require_file(path: str | os.PathLike[str], what: str = "artifact") -> Path:
    """The path as a Path, or a WorkbenchError saying why it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise WorkbenchError(f"{p}: no such file", f"check the path of the {what}")
    if p.is_dir():
        raise WorkbenchError(f"{p}: is a directory, expected a {what} file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise WorkbenchError(f"{p}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise WorkbenchError(f"{p}: file is empty", f"the {what} was not written completely")
    if not os.access(p, os.R_OK):
        raise WorkbenchError(f"{p}: permission denied")
    return p


def head_bytes(path: Path, n: int = 4096) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read ({exc.strerror})") from None


def open_maybe_gzip(path: Path) -> BinaryIO:
    """Binary stream of the file's content, transparently gunzipped (by magic, not name)."""
    try:
        if head_bytes(path, 2) == GZIP_MAGIC:
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot open ({exc})") from None


def gunzipped_head(path: Path, n: int = 4096) -> bytes:
    """First bytes of the (possibly gzipped) content; b"" when the gzip stream is broken."""
    try:
        with open_maybe_gzip(path) as f:
            return f.read(n)
    except (OSError, EOFError, gzip.BadGzipFile, ValueError):
        return b""


def read_text(path: Path, what: str) -> str:
    """Whole file as text (gunzipped when needed); non-UTF-8 -> WorkbenchError."""
    try:
        with open_maybe_gzip(path) as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise WorkbenchError(f"{path}: cannot read {what} ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(
            f"{path}: {what} is not UTF-8 text (bad byte at offset {exc.start})",
            "re-export the file; it may be truncated or binary",
        ) from None
