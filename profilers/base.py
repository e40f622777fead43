"""The one interface every profiler wrapper implements, and tool discovery.

A wrapper turns the child command into the wrapped command (``ncu ... python -m workloads.run``),
adds environment, and after the run collects its artifacts into the run folder. ``check()``
answers "can this wrapper run here?" with a typed Capability instead of an exception, so the
app can show a disabled option with its reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workloads.spec import RunSpec


@dataclass(frozen=True)
class Capability:
    available: bool
    reason: str = ""  # why not, and what to do
    path: str | None = None
    version: str | None = None


@dataclass
class Wrapped:
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)


class ProfilerWrapper(Protocol):
    name: str

    def check(self) -> Capability: ...

    def wrap(self, child_cmd: list[str], run_dir: Path, spec: RunSpec) -> Wrapped: ...

    def collect(self, run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
        """Artifacts (role -> path relative to run_dir). Raise WorkbenchError on a known
        tool failure found in the log (the run is then recorded as failed with that line)."""
        ...


# Where NVIDIA tools live when they are not on PATH (the GPU box has ncu in /usr/local/bin and
# only the nsys bundled inside Nsight Compute).
_SEARCH: dict[str, list[str]] = {
    "ncu": ["/usr/local/cuda/bin/ncu", "/opt/nvidia/nsight-compute/*/ncu",
            "/usr/local/NVIDIA-Nsight-Compute*/ncu"],
    "nsys": ["/usr/local/cuda/bin/nsys", "/opt/nvidia/nsight-systems/*/bin/nsys",
             "/usr/local/bin/nsys", "/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys"],
}


def find_tool(name: str) -> str | None:
    env_override = os.environ.get(f"AIPERF_{name.upper()}")
    if env_override:
        return env_override if os.path.exists(env_override) else None
    found = shutil.which(name)
    if found:
        return found
    for pattern in _SEARCH.get(name, []):
        hits = sorted(glob.glob(pattern), reverse=True)  # newest version first
        if hits:
            return hits[0]
    return None


def tool_version(path: str) -> str | None:
    try:
        from profilers.supervisor import child_environment  # (no secrets for a tool either)

        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20,
                             env=child_environment(None))
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    return lines[-1] if lines else None
