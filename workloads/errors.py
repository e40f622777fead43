"""The one exception family of the workbench.

A WorkbenchError is a user-facing problem: bad input, a missing tool, an unmet requirement.
Front ends print ``message`` (and ``hint``) on one line and exit with code 2; they never show
a traceback for it. Failures of a run itself are not exceptions: they are run records with a
status and an error (see sessions.store).
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix: says what is wrong and, in ``hint``, what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


# Every other error class of the workbench, each a WorkbenchError: front ends print any of them
# as one line (exit 2), never a traceback.


class StorageError(WorkbenchError):
    """The session home cannot be written (full, read-only, unreadable)."""


class UnsafeTargetError(WorkbenchError):
    """A path to write holds something that is not a regular file: it is left alone."""


class TargetError(WorkbenchError):
    """A bring-your-own-model target that cannot be found, imported or built."""


class LLMError(WorkbenchError):
    """The LLM request failed; ``kind`` says how (no_key, auth, rate_limit, timeout, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class CorruptCache(WorkbenchError):
    """A parsed-artifact cache is not one this code wrote for this artifact (it is parsed
    again, never trusted)."""


class Uncacheable(WorkbenchError):
    """A parse holds something the cache format does not store (it is then not cached)."""
