"""The run spec: what to run, with which layers, under which profiler. Pure Python (no torch).

The spec travels as JSON from the front end (CLI or app) through profilers/ to the child
process (``python -m workloads.run --spec spec.json --out DIR``) and is stored with the run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from workloads.errors import WorkbenchError


@dataclass(frozen=True)
class ProfilerTraits:
    """What a profiler wrapper implies for a run; ``profilers.registry`` pairs each with its
    wrapper, and the child (which may not import profilers) reads them here."""

    title: str
    # ncu and nsys serialize every kernel (ncu replays each): the latency is the profiler's,
    # parity is skipped, and one measured repeat after one warm-up is all their range needs.
    replays_kernels: bool = False
    kernel_artifact: bool = False  # writes a kernel-level artifact (a trace, a report)
    default_repeat: int = 5
    default_warmup: int = 2


PROFILER_TRAITS: dict[str, ProfilerTraits] = {
    "timer": ProfilerTraits("wall-clock timer"),
    "torch": ProfilerTraits("torch.profiler (Kineto trace)", kernel_artifact=True),
    "ncu": ProfilerTraits("Nsight Compute", replays_kernels=True, kernel_artifact=True,
                          default_repeat=1, default_warmup=1),
    "nsys": ProfilerTraits("Nsight Systems", replays_kernels=True, kernel_artifact=True,
                           default_repeat=1, default_warmup=1),
    "memory": ProfilerTraits("CUDA allocator history / peak RSS"),
}
PROFILERS = tuple(PROFILER_TRAITS)
AUTO = -1  # repeat / warmup: the profiler's default (PROFILER_TRAITS)


def replays_kernels(profiler: str | None) -> bool:
    traits = PROFILER_TRAITS.get(str(profiler))
    return bool(traits and traits.replays_kernels)
# What --profiler ncu replays (profiler option "scope"); see workloads.run.ncu_sample.
NCU_SCOPES = ("auto", "step")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunSpec:
    workload: str = "dense"
    preset: str = "tiny"
    layers: list[str] = field(default_factory=lambda: ["L0"])
    # Layers a range (e.g. L0-L6) left out because they do not apply to the workload:
    # name -> why. Not run; recorded as not applied so the report says what was skipped.
    skipped_layers: dict[str, str] = field(default_factory=dict)
    profiler: str = "timer"
    # Workload parameters overriding the preset (batch, prompt_len, new_tokens, dtype, ...).
    params: dict[str, Any] = field(default_factory=dict)
    # Measured repeats of the step and un-measured ones before them; AUTO takes the
    # profiler's defaults (5 and 2; 1 and 1 under ncu / nsys) when the spec is made.
    repeat: int = AUTO
    warmup: int = AUTO
    timeout_s: float = 600.0
    seed: int = 0
    device: str = "auto"
    label: str = ""
    # Profiler options (e.g. ncu kernel regex, launch skip/count); free-form per wrapper.
    profiler_options: dict[str, Any] = field(default_factory=dict)
    telemetry: bool = True  # NVML sampler beside the run (n/a without NVML)
    # Bring your own model: a target ("file.py:build", "package.module:build" or an
    # entry-point name) built instead of the catalog workload, and/or a local HF-layout
    # checkpoint folder (config.json + *.safetensors) loaded into the built-in workload.
    target: str = ""
    checkpoint: str = ""
    # Multi-GPU: ranks per node under torchrun (1 = a plain single-process run), nodes, and
    # the rendezvous endpoint (host:port) that nnodes > 1 needs; see profilers.torchrun.
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str = ""

    def __post_init__(self) -> None:
        traits = PROFILER_TRAITS.get(self.profiler)
        if traits is not None:
            if self.repeat == AUTO:
                self.repeat = traits.default_repeat
            if self.warmup == AUTO:
                self.warmup = traits.default_warmup

    def validate(self) -> RunSpec:
        if self.profiler not in PROFILERS:
            raise WorkbenchError(
                f"unknown profiler {self.profiler!r}", f"choose one of: {', '.join(PROFILERS)}"
            )
        if self.device not in DEVICES:
            raise WorkbenchError(
                f"unknown device {self.device!r}", f"choose one of: {', '.join(DEVICES)}"
            )
        if not isinstance(self.skipped_layers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.skipped_layers.items()):
            raise WorkbenchError("skipped_layers must map layer names to reasons")
        if self.repeat < 1:
            raise WorkbenchError(f"--repeat must be >= 1, got {self.repeat}")
        if self.warmup < 0:
            raise WorkbenchError(f"--warmup must be >= 0, got {self.warmup}")
        if self.timeout_s <= 0:
            raise WorkbenchError(f"--timeout must be > 0 seconds, got {self.timeout_s}")
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise WorkbenchError("--nproc-per-node and --nnodes must be >= 1")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise WorkbenchError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT",
                                 "run the same command on every node with the same endpoint")
        return self

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WorkbenchError(f"unknown spec fields: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> RunSpec:
        """A spec from a stored record: fields this version does not know are left out (a
        record written by a newer version still opens)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"spec is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WorkbenchError("spec must be a JSON object")
        return cls.from_dict(data)
