"""Supervise one child process: own process group, live stdout events, log capture, timeout,
cancel (SIGINT, then SIGKILL of the whole group), and no orphans left behind — also when the
supervisor itself dies (``workloads.watchdog``: the kernel's parent-death signal on Linux, a
pipe elsewhere) or the user presses Ctrl-C again while the child is stopping (straight to
SIGKILL). The child never sees the workbench's own secrets (the LLM API key).
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

from workloads import watchdog
from workloads.protocol import parse_event

# How long a child gets to stop after SIGINT before the group is killed.
GRACE_S = 5.0
# The workbench's own credentials: a workload, a --target or a profiler has no use for them.
SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def child_environment(env: dict[str, str] | None) -> dict[str, str]:
    """``env`` (default: this process's) without the workbench's secrets."""
    base = dict(os.environ if env is None else env)
    for name in SECRET_ENV:
        base.pop(name, None)
    return base


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
        try:
            log.write(f"$ {' '.join(cmd)}\n".encode())
        except OSError:
            pass
        proc, watch_fd = _spawn(cmd, child_environment(env), cwd)
        _LIVE_GROUPS.add(proc.pid)
        last: dict[str, dict | None] = {"event": None}
        lock = threading.Lock()

        logging = {"on": True}

        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                # keep draining when the log cannot take more (a full disk): a child blocked
                # on a full pipe would hang until its timeout
                if logging["on"]:
                    try:
                        with lock:
                            log.write(raw)
                    except OSError:
                        logging["on"] = False
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
            try:
                while proc.poll() is None:
                    if cancel is not None and cancel.is_set():
                        status = "cancelled"
                        break
                    if time.monotonic() > deadline:
                        status = "timeout"
                        break
                    time.sleep(0.05)
            except KeyboardInterrupt:  # Ctrl-C (or SIGTERM/SIGHUP, made one by the CLI):
                status = "cancelled"  # the child (own session) must stop too
            if status != "exited":
                _stop_group(proc)
                try:
                    with lock:
                        log.write(f"\n[aiperf] child {status}: stopped by the supervisor\n"
                                  .encode())
                except OSError:
                    pass
            else:
                # The child is done; reap anything it left in its group (e.g. a stray worker).
                _kill_group(proc.pid, signal.SIGKILL)
        finally:
            _LIVE_GROUPS.discard(proc.pid)
            if watch_fd is not None:
                os.close(watch_fd)
        reader.join(timeout=5)
    return ChildOutcome(proc.returncode, status, time.monotonic() - start, log_path, last["event"])


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path | None
           ) -> tuple[subprocess.Popen, int | None]:
    """Start ``cmd`` in its own session (we signal its group whole) tied to this process's
    life: PR_SET_PDEATHSIG on Linux, else a pipe whose end of file the child watches. Returns
    the process and the pipe end to close once it is gone (None on Linux)."""
    if watchdog.has_parent_death_signal():
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**env, **watchdog.supervisor_env()}, cwd=cwd, start_new_session=True,
            preexec_fn=watchdog.parent_death_preexec(os.getpid()))
        return proc, None
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**env, **watchdog.supervisor_env(read_end)}, cwd=cwd, start_new_session=True,
            pass_fds=(read_end,))
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return proc, write_end


# Process groups of the children being supervised now: a repeated stop signal kills them at
# once from the CLI's signal handler (raising a second KeyboardInterrupt there could land in a
# finally or an except block and end the CLI with a traceback — seen in the fault injection).
_LIVE_GROUPS: set[int] = set()


def kill_live_groups() -> int:
    """SIGKILL every supervised child's process group; returns how many."""
    groups = list(_LIVE_GROUPS)
    for pgid in groups:
        _kill_group(pgid, signal.SIGKILL)
    return len(groups)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT the group (lets the child flush and write its result), then SIGKILL it. A second
    Ctrl-C while waiting is "stop now": the SIGKILL comes at once, never skipped."""
    _kill_group(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        _kill_group(proc.pid, signal.SIGKILL)
        for _ in range(3):  # reap it; a third Ctrl-C cannot leave a zombie or an orphan
            try:
                proc.wait(timeout=GRACE_S)
                break
            except subprocess.TimeoutExpired:
                break
            except KeyboardInterrupt:
                continue
