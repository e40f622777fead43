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
