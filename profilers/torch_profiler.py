"""`torch`: torch.profiler (CPU + CUDA activities, record_shapes, with_flops) around extra
steps after the timed ones. The child owns the profiled region (only it knows where the step
is) and writes ``trace.json.gz``; this wrapper checks it arrived."""

from __future__ import annotations

from pathlib import Path

from profilers.base import Capability, Wrapped
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec


class TorchProfilerWrapper:
    name = "torch"

    def check(self) -> Capability:
        return Capability(True)

    def wrap(self, child_cmd: list[str], run_dir: Path, spec: RunSpec) -> Wrapped:
        return Wrapped(list(child_cmd))

    def collect(self, run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
        trace = run_dir / "trace.json.gz"
        if not trace.is_file():
            raise WorkbenchError("torch profiler wrote no trace.json.gz", "see the run's log")
        return {"trace": trace.name}
