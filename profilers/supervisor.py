"""Supervise one child process: own process group, live stdout events, log capture, timeout,
cancel (SIGINT, then SIGKILL of the whole group), and no orphans left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workloads.protocol import parse_event

# How long a child gets to stop after SIGINT before the group is killed.
GRACE_S = 5.0


@dataclass
class ChildOutcome:
    returncode: int | None
    status: str  # "exited" | "timeout" | "cancelled"
    wall_s: float
    log_path: Path
    last_event: dict | None = None


def run_supervised(
    cmd: list[str],
    log_path: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_event: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
) -> ChildOutcome:
    """Run ``cmd``; stdout and stderr go to ``log_path`` (stdout lines are also parsed for
    progress events, passed to ``on_event``). Returns when the child and its group are gone."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "ab", buffering=0) as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,  # own process group: we signal it whole
        )
        last: dict[str, dict | None] = {"event": None}
        lock = threading.Lock()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                with lock:
                    log.write(raw)
                line = raw.decode("utf-8", "replace").rstrip("\n")
                event = parse_event(line)
                if event is not None:
                    last["event"] = event
                if on_event is None:
                    continue
                try:
                    on_event(event if event is not None else {"event": "log", "line": line})
                except Exception:  # a front end's callback must never kill supervision
                    pass

        reader = threading.Thread(target=pump, name="child-stdout", daemon=True)
        reader.start()
        status = "exited"
        deadline = start + timeout_s
        try:
            while proc.poll() is None:
                if cancel is not None and cancel.is_set():
                    status = "cancelled"
                    break
                if time.monotonic() > deadline:
                    status = "timeout"
                    break
                time.sleep(0.05)
        except KeyboardInterrupt:  # Ctrl-C in the front end: the child (own session) must stop too
            status = "cancelled"
        if status != "exited":
            _stop_group(proc)
            with lock:
                log.write(f"\n[aiperf] child {status}: stopped by the supervisor\n".encode())
        else:
            # The child is done; reap anything it left in its group (e.g. a stray worker).
            _kill_group(proc.pid, signal.SIGKILL)
        reader.join(timeout=5)
    return ChildOutcome(proc.returncode, status, time.monotonic() - start, log_path, last["event"])


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT the group (lets the child flush and write its result), then SIGKILL it."""
    _kill_group(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
