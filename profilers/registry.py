"""The profiler wrappers by name, each with its traits (``workloads.spec.PROFILER_TRAITS``:
whether it replays kernels, writes a kernel artifact, its default repeats) — the one table
the runner, the API's defaults and validation, and the reports ask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from profilers.base import Capability, ProfilerWrapper
from profilers.ncu import NcuWrapper
from profilers.nsys import NsysWrapper
from profilers.timer import TimerWrapper
from profilers.torch_profiler import TorchProfilerWrapper
from workloads.errors import WorkbenchError
from workloads.spec import PROFILER_TRAITS, ProfilerTraits


@dataclass(frozen=True)
class ProfilerEntry:
    name: str
    traits: ProfilerTraits
    make: Callable[[], ProfilerWrapper]

    def check(self) -> Capability:
        """Can it run here? (a missing tool is a Capability with the reason, not an error)"""
        return self.make().check()


_FACTORIES: dict[str, Callable[[], ProfilerWrapper]] = {
    "timer": TimerWrapper,
    "torch": TorchProfilerWrapper,
    "ncu": NcuWrapper,
    "nsys": NsysWrapper,
    "memory": TimerWrapper,  # the child records allocator history itself
}
PROFILER_REGISTRY: dict[str, ProfilerEntry] = {
    name: ProfilerEntry(name, traits, _FACTORIES[name]) for name, traits in PROFILER_TRAITS.items()
}


def profiler_entry(name: str) -> ProfilerEntry:
    try:
        return PROFILER_REGISTRY[name]
    except KeyError:
        raise WorkbenchError(f"unknown profiler {name!r}",
                             f"choose one of: {', '.join(PROFILER_REGISTRY)}") from None


def get_wrapper(name: str) -> ProfilerWrapper:
    return profiler_entry(name).make()
