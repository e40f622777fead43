"""Defect 5: a full disk (a 2 MB tmpfs home) and a read-only home gave sqlite3/OSError
tracebacks, runs stayed `running` with a partial trace.json.tmp, and listing failed.

As root the home is a real small tmpfs (filled with a ballast file, or remounted read-only);
elsewhere a full disk is simulated with RLIMIT_FSIZE (writes past the limit fail with EFBIG,
the same code path) and a read-only home with chmod."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability.tools import (
    ROOT,
    TRACE,
    cli,
    fill,
    is_root,
    one_line_error,
    remount,
    saved_session,
    tmpfs,
)


@contextmanager
def full_home(tmp_path: Path, leave: int) -> Iterator[tuple[Path, dict]]:
    """A session home on a nearly full disk: (home, extra subprocess arguments)."""
    if is_root():
        with tmpfs(tmp_path / "disk", "2m") as disk:
            home = disk / "home"
            assert cli(home, "sessions", "list").returncode == 0
            fill(disk, leave)
            yield home, {}
        return
    home = tmp_path / "home"
    assert cli(home, "sessions", "list").returncode == 0

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (leave, leave))

    yield home, {"preexec_fn": limit}


def run_cli(home: Path, *args: str, **popen: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPERF_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          **popen)  # type: ignore[call-overload]


def _leftovers(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.name.endswith(".tmp") or p.name == "trace.json"
                  or p.name.startswith(".partial-"))


@pytest.mark.slow
def test_a_run_that_hits_a_full_disk_fails_cleanly(tmp_path: Path) -> None:
    with full_home(tmp_path, 200 * 1024) as (home, popen):
        proc = run_cli(home, "run", "--preset", "tiny", "--profiler", "torch", "--repeat", "2",
                       "--warmup", "1", "--no-telemetry", "--quiet", **popen)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        assert "no space left" in proc.stdout.lower() or "too large" in proc.stdout.lower(), \
            proc.stdout
        assert _leftovers(home) == []
        rows = run_cli(home, "sessions", "list")
        assert rows.returncode == 0, rows.stderr
        statuses = [line.split()[1] for line in rows.stdout.splitlines()[1:]]
        assert statuses == ["failed"], rows.stdout


def test_listing_and_showing_work_on_a_full_disk(tmp_path: Path) -> None:
    if not is_root():
        pytest.skip("a truly full disk needs a tmpfs (root)")
    with tmpfs(tmp_path / "disk", "2m") as disk:
        home = disk / "home"
        run_id = saved_session(home)
        fill(disk, 0)
        listed = cli(home, "sessions", "list")
        assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
        shown = cli(home, "show", run_id)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == run_id, shown.stderr
        line = one_line_error(cli(home, "report", run_id, "--export", str(disk / "r.md")))
        assert "no space left" in line.lower()
        line = one_line_error(cli(home, "analyze", str(TRACE), "--save"))
        assert "no space left" in line.lower()
        assert [p.name for p in (home / "runs").iterdir()] == [run_id]


def test_analyze_save_past_the_file_size_limit_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "sessions", "list").returncode == 0

    def limit() -> None:  # the trace (~190 KB) cannot be copied in
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = run_cli(home, "analyze", str(TRACE), "--save", preexec_fn=limit)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot create a session" in proc.stderr
    assert list((home / "runs").iterdir()) == []
    assert cli(home, "sessions", "list").stdout.startswith("no sessions")


@contextmanager
def read_only_home(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if is_root():
        with tmpfs(tmp_path / "disk", "8m") as disk:
            home = disk / "home"
            run_id = saved_session(home)
            remount(disk, "ro")
            try:
                yield home, run_id
            finally:
                remount(disk, "rw")
        return
    home = tmp_path / "home"
    run_id = saved_session(home)
    for path in [home, *home.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    try:
        yield home, run_id
    finally:
        for path in [home, *home.rglob("*")]:
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)


def test_a_read_only_home_can_still_be_listed_and_shown(tmp_path: Path) -> None:
    with read_only_home(tmp_path) as (home, run_id):
        listed = cli(home, "sessions", "list")
        assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
        shown = cli(home, "show", run_id)
        assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "ok", shown.stderr
        report = cli(home, "report", run_id)
        assert report.returncode == 0 and "# aiperf-workbench report" in report.stdout
        line = one_line_error(cli(home, "analyze", str(TRACE), "--save"))
        assert "read-only" in line or "permission" in line.lower(), line
