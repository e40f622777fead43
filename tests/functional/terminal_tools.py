"""Helpers for the tests that drive the real installed command: find it, find (or, on the CI
box only, install) tmux and chromium.

CI runs `.ci/run` as root on Debian with CI=true. The Debian packages these tests need are
`tmux` and `chromium`; the fixtures in test_terminal.py / test_serve.py install one with
``apt-get install -y`` only when all of these hold: it is missing, we are root, and CI=true.
Anywhere else a missing binary skips the test with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def workbench_command() -> list[str]:
    """The installed console script beside this interpreter (pip puts it there), else the
    one on PATH, else the module (a source checkout that was never installed)."""
    beside = Path(sys.executable).parent / "aiperf-workbench"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("aiperf-workbench")
    return [found] if found else [sys.executable, "-m", "workbench.cli"]


def require_binary(binary: str, package: str, names: tuple[str, ...] = ()) -> str:
    """Path to ``binary`` (or one of ``names``); apt-installs ``package`` on the CI box when
    missing; skips the test elsewhere."""
    candidates = (binary, *names)

    def find() -> str | None:
        return next((p for p in map(shutil.which, candidates) if p), None)

    path = find()
    if path is None and os.environ.get("CI") == "true" and hasattr(os, "geteuid") \
            and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-q", package],
                       env=env, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        path = find()
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package {package!r}; CI installs it)")
    return path
