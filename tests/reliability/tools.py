"""Shared by the reliability tests: the real CLI in a subprocess, process accounting by a
marker in the command line or environment, hostile names, and a small full or read-only
file system (a tmpfs; root only, else the caller falls back or skips)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "h100"
TRACE = FIXTURES / "torch_trace.json"
TARGETS = Path(__file__).resolve().parent / "targets"

# Kernel names and a device name an attacker could put in a trace someone analyzes.
HOSTILE_NAMES = [
    "evil\r| forged | row |\rgemm_kernel",
    "name\nwith\n# a heading",
    "<img src=x onerror=alert(1)>_kernel",
    "![pixel](https://evil.example/track.png)",
    "\x1b]0;pwned title\x07\x1b[2J\x1b[31mred_kernel\x1b[0m",
    "\x1b]52;c;ZXZpbA==\x07clipboard_kernel",
    "\x1b]8;;https://evil.example\x1b\\link_kernel\x1b]8;;\x1b\\",
    "\u202eevil_rtl_kernel",
    "\x9b2Jc1_csi_kernel",
    "back`tick` and |pipe| and \\slash <b>bold</b> & [link](http://evil.example)",
]
HOSTILE_DEVICE = "H100\r\n# pwned <script>alert(1)</script>\x1b]0;title\x07"
TERMINAL_BAD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def cli(home: Path | str, *args: str, env: dict[str, str] | None = None, timeout: float = 180,
        stdin: str | None = None, cwd: Path | None = None, home_flag: bool = True
        ) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "AIPERF_"))}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)
    full.update(env or {})
    argv = [sys.executable, "-m", "workbench.cli"]
    if home_flag:
        argv += ["--home", str(home)]
    return subprocess.run([*argv, *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full, input=stdin)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def saved_session(home: Path, artifact: Path = TRACE) -> str:
    proc = cli(home, "analyze", str(artifact), "--save")
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.strip().split()[-1]


def pids_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line or environment holds ``marker``."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:
                environ = b""
        except (OSError, IndexError):
            continue
        if needle in cmdline or needle in environ:
            found.append(int(entry))
    return found


def wait_gone(marker: str, timeout: float = 10.0) -> list[int]:
    """Wait for every process holding ``marker`` to end; returns those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = pids_with(marker)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def kill_all(pids: list[int]) -> None:
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def hostile_trace(path: Path, names: list[str] = HOSTILE_NAMES,
                  device: str = HOSTILE_DEVICE) -> Path:
    """The real H100 trace with its first kernels renamed to ``names`` and a hostile device."""
    data = json.loads(TRACE.read_text())
    kernels = [e for e in data["traceEvents"] if e.get("cat") == "kernel"]
    for event, name in zip(kernels, names, strict=False):
        event["name"] = name
    for props in data.get("deviceProperties") or []:
        props["name"] = device
    text = json.dumps(data)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only); skips the test where it cannot mount."""
    if not is_root() or shutil.which("mount") is None:
        pytest.skip("a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:  # something still holds it open: detach it now, freed when that closes
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the file system holding ``path`` up to ``leave`` bytes free (a ballast file)."""
    ballast = path / f"ballast-{time.monotonic_ns()}"
    free = shutil.disk_usage(path).free - leave
    with open(ballast, "wb") as fh:
        chunk = b"\0" * 65536
        while free > 0:
            try:
                fh.write(chunk[: min(len(chunk), free)])
                fh.flush()
            except OSError:
                break
            free -= len(chunk)
    return ballast


def terminal_clean(text: str) -> list[str]:
    """Characters a terminal would act on (escape, controls other than newline and tab)."""
    return sorted({repr(c) for c in TERMINAL_BAD.findall(text)})
