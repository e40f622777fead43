"""The supervisor on real processes: timeout and cancel stop the whole process group
(grandchildren too), events are parsed live, everything lands in the log."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from profilers.supervisor import run_supervised

CHILD = r"""
import os, subprocess, sys, time
gc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(gc.pid))
print('@@aiperf {"event": "phase", "phase": "measure"}', flush=True)
print("plain output line", flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(path: Path, timeout: float = 20) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError("child never started")


def test_timeout_kills_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "gc.pid"
    events: list[dict] = []
    outcome = run_supervised([sys.executable, "-c", CHILD, str(pidfile)], tmp_path / "log",
                             timeout_s=3, on_event=events.append)
    assert outcome.status == "timeout"
    gc = int(pidfile.read_text())
    time.sleep(0.2)
    assert not _alive(gc)
    log = (tmp_path / "log").read_text()
    assert "plain output line" in log and "timeout" in log
    assert {"event": "phase", "phase": "measure"} in events
    assert {"event": "log", "line": "plain output line"} in events
    assert outcome.wall_s < 15


def test_cancel_stops_child_and_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "gc.pid"
    cancel = threading.Event()
    result: dict = {}

    def go() -> None:
        result["o"] = run_supervised([sys.executable, "-c", CHILD, str(pidfile)],
                                     tmp_path / "log", timeout_s=60, cancel=cancel)

    t = threading.Thread(target=go)
    t.start()
    gc = _wait_for(pidfile)
    cancel.set()
    t.join(timeout=20)
    assert result["o"].status == "cancelled"
    time.sleep(0.2)
    assert not _alive(gc)


def test_exit_code_and_last_event(tmp_path: Path) -> None:
    code = 'print(\'@@aiperf {"event": "done", "status": "failed"}\'); raise SystemExit(3)'
    outcome = run_supervised([sys.executable, "-c", code], tmp_path / "log", timeout_s=30)
    assert outcome.status == "exited" and outcome.returncode == 3
    assert outcome.last_event == {"event": "done", "status": "failed"}
