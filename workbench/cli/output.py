"""Where a command's text goes: a file (atomically, through ``workbench.api.export``) or, for
'-', stdout with terminal escapes stripped (text from traces is foreign)."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.export.escape import term_text


def write_output(path: Path, text: str) -> None:
    if str(path) == "-":
        sys.stdout.write(term_text(text))
        return
    from workbench.api.export import write_text

    write_text(path, text)


def to_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == "-"
