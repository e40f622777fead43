"""`timer`: no external profiler. The child times the step itself (CUDA events on GPU,
perf_counter on CPU, warm-up excluded); nothing is wrapped."""

from __future__ import annotations

from pathlib import Path

from profilers.base import Capability, Wrapped
from workloads.spec import RunSpec


class TimerWrapper:
    name = "timer"

    def check(self) -> Capability:
        return Capability(True)

    def wrap(self, child_cmd: list[str], run_dir: Path, spec: RunSpec) -> Wrapped:
        return Wrapped(list(child_cmd))

    def collect(self, run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
        return {}
