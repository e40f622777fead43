"""Atomic file writes for the store and the exports: the project's one writer lives in
``workloads.atomic`` (the child process uses it too and may not import ``sessions``)."""

from __future__ import annotations

from workloads.atomic import (
    UnsafeTargetError,
    check_target,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

__all__ = ["UnsafeTargetError", "check_target", "write_bytes_atomic", "write_json_atomic",
           "write_text_atomic"]
