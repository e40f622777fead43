"""File checks shared by the parsers: every problem becomes a one-line WorkbenchError.

Input limits: a parser reads at most ``max_bytes`` of (decompressed) content and keeps at most
``max_events`` events or rows, so a 7 MB gzip that inflates to 20M events ends with a one-line
error instead of 11 GB of memory. The limits are a context variable: ``analyze --max-bytes /
--max-events / --no-limits`` sets them for one command (``limited_input``); everything else
(the app, a run's own artifacts) gets the defaults, which hold a 1 GB trace.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workloads.errors import WorkbenchError

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of JSON / CSV text, after decompression
DEFAULT_MAX_EVENTS = 5_000_000  # a 1 GB Kineto trace holds ~3M
LIMITS_HINT = ("if the machine has the memory, lift it: analyze --max-bytes N / "
               "--max-events N, or --no-limits")


@dataclass(frozen=True)
class InputLimits:
    max_bytes: int | None = DEFAULT_MAX_BYTES  # None: no limit
    max_events: int | None = DEFAULT_MAX_EVENTS


_DEFAULT_LIMITS = InputLimits()
_LIMITS: ContextVar[InputLimits | None] = ContextVar("aiperf_input_limits", default=None)


def input_limits() -> InputLimits:
    return _LIMITS.get() or _DEFAULT_LIMITS


@contextmanager
def limited_input(limits: InputLimits) -> Iterator[InputLimits]:
    """Parse with these limits inside the block (a forked parse worker inherits them)."""
    token = _LIMITS.set(limits)
    try:
        yield limits
    finally:
        _LIMITS.reset(token)


def too_many_bytes(path: Path, what: str, limit: int) -> WorkbenchError:
    return WorkbenchError(
        f"{path}: the {what} holds more than {limit:,} bytes of content (input limit "
        "--max-bytes; a compressed file counts decompressed)", LIMITS_HINT)


def too_many_events(path: Path, what: str, limit: int) -> WorkbenchError:
    return WorkbenchError(
        f"{path}: the {what} holds more than {limit:,} events (input limit --max-events)",
        LIMITS_HINT)

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
    """Whole file as text (gunzipped when needed, at most ``max_bytes`` of it); non-UTF-8 ->
    WorkbenchError."""
    limit = input_limits().max_bytes
    try:
        with open_maybe_gzip(path) as f:
            raw = f.read() if limit is None else f.read(limit + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise WorkbenchError(f"{path}: cannot read {what} ({exc})") from None
    if limit is not None and len(raw) > limit:
        raise too_many_bytes(path, what, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(
            f"{path}: {what} is not UTF-8 text (bad byte at offset {exc.start})",
            "re-export the file; it may be truncated or binary",
        ) from None
