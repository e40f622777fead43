"""A child dies with the process that supervises it.

The supervisor (``profilers.supervisor``) starts the child in its own process group so that
cancel can signal the whole tree; the price is that nothing stops that tree when the
supervisor itself dies (kill -9, a crash, a dropped SSH session). Three guards:

- the direct child gets ``PR_SET_PDEATHSIG`` (Linux, set between fork and exec by
  ``parent_death_preexec``): the kernel kills it the moment its parent goes;
- elsewhere the child inherits the read end of a pipe whose write end only the supervisor
  holds (``AIPERF_WATCHDOG_FD``): end-of-file means the supervisor is gone;
- a process further down (the workload under ncu, nsys or torchrun, which has its own parent)
  calls ``start_watchdog()``: a thread that notices the supervisor is gone — its pid dead or
  reused, told apart by the process start time — and kills its own process group.

Stdlib only (the child imports it before torch; the supervisor imports it too).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

ENV_PID = "AIPERF_SUPERVISOR_PID"
ENV_START = "AIPERF_SUPERVISOR_START"
ENV_PGID = "AIPERF_SUPERVISOR_PGID"
ENV_FD = "AIPERF_WATCHDOG_FD"
_PR_SET_PDEATHSIG = 1
POLL_S = 0.2


def process_start_time(pid: int) -> str | None:
    """An opaque token that differs between two processes that had the same pid: the start
    time in clock ticks since boot (Linux /proc), else None (the pid alone is then used)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            raw = stream.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs and is the same process that had ``start`` (when given)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds that pid now
        return start is None
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stream:
                raw = stream.read()
        except OSError:
            return False
        fields = raw[raw.rfind(b")") + 2:].split()
        if fields and fields[0] == b"Z":  # a zombie has exited; only its parent must reap it
            return False
        if start is not None and len(fields) > 19 and fields[19].decode() != start:
            return False
    return True


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved now: nothing may be loaded between fork and exec


def has_parent_death_signal() -> bool:
    return _PRCTL is not None


def parent_death_preexec(parent_pid: int, sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when its parent dies; if the parent already
    died between fork and here, the child ends at once."""
    prctl = _PRCTL

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(137)

    return preexec


def supervisor_env(watch_fd: int | None = None) -> dict[str, str]:
    """What a supervised child needs to find its supervisor again."""
    pid = os.getpid()
    env = {ENV_PID: str(pid), ENV_PGID: str(os.getpgrp())}
    start = process_start_time(pid)
    if start is not None:
        env[ENV_START] = start
    if watch_fd is not None:
        env[ENV_FD] = str(watch_fd)
    return env


def _kill_own_group() -> None:
    """Stop this process and everything in its group (wrappers, ranks' helpers)."""
    own = os.getpgrp()
    try:
        supervisor_group = int(os.environ.get(ENV_PGID, "0"))
    except ValueError:
        supervisor_group = 0
    if own > 1 and own != supervisor_group:  # never the supervisor's own (the shell's) group
        try:
            os.killpg(own, signal.SIGKILL)
        except OSError:
            pass
    os._exit(137)


def start_watchdog(poll_s: float = POLL_S) -> threading.Thread | None:
    """Watch the supervisor named in the environment; None when there is none to watch."""
    fd_text = os.environ.get(ENV_FD)
    if fd_text:
        try:
            fd = int(fd_text)
            os.fstat(fd)
        except (ValueError, OSError):
            fd = -1
        if fd >= 0:
            def wait_for_eof() -> None:
                try:
                    while os.read(fd, 1):
                        pass
                except OSError:
                    pass
                _kill_own_group()

            thread = threading.Thread(target=wait_for_eof, name="aiperf-watchdog", daemon=True)
            thread.start()
            return thread
    try:
        pid = int(os.environ.get(ENV_PID, ""))
    except ValueError:
        return None
    start = os.environ.get(ENV_START) or None
    if not process_alive(pid, start):
        _kill_own_group()

    def poll() -> None:
        while process_alive(pid, start):
            time.sleep(poll_s)
        _kill_own_group()

    thread = threading.Thread(target=poll, name="aiperf-watchdog", daemon=True)
    thread.start()
    return thread
