"""The checks issue 18 asks anyone to be able to run, run by the suite so CI keeps them: the
import-linter contracts of pyproject.toml (the layering), mypy over every package the
pyproject names (workbench/ included), and no digging into a nested ``extra`` of a record."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ("workbench", "workloads", "profilers", "analyzers", "sessions", "benchmarks")


def test_import_contracts_are_kept() -> None:
    pytest.importorskip("importlinter")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command "
         "as c; sys.exit(c())"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.slow
def test_mypy_is_clean_over_every_package() -> None:
    pytest.importorskip("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_no_record_digs_into_a_nested_extra() -> None:
    # record.extra's own "extra" (the child's report nested in the record: now record.details);
    # one level of "extra" in an old session's result.json is the legacy layout, allowed.
    lookup = r"""(?:\.get\(\s*["']extra["']\s*\)|\[\s*["']extra["']\s*\])"""
    digging = re.compile(rf"\.extra\b.*{lookup}|{lookup}.*{lookup}")
    found = [f"{path.relative_to(ROOT)}:{n}"
             for package in CODE for path in sorted((ROOT / package).rglob("*.py"))
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if digging.search(line)]
    assert found == []
