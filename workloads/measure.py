"""Timing discipline for the measured step, latency statistics and peak memory.

CUDA: a pair of CUDA events around each repeat, then a synchronize, so the time is device
time of exactly that repeat and Python launch overhead shows up only where it stalls the GPU.
CPU: ``time.perf_counter`` around the call (CPU ops run synchronously). Warm-up repeats are
never part of the samples. ``reset`` runs outside the timed region.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from workloads.stats import percentile

STEP_RANGE = "aiperf:step"  # NVTX / record_function name of one measured step


class StepTimer:
    """Times one call in milliseconds on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.on_cuda = device.type == "cuda"

    def time_ms(self, call: Callable[[], Any]) -> float:
        if self.on_cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        begin = time.perf_counter()
        call()
        return (time.perf_counter() - begin) * 1e3


def latency_stats(samples_ms: list[float]) -> dict[str, Any]:
    """median, mean, p10, p90, p99, stdev (sample; None with one sample), min, max, n."""
    ordered = sorted(samples_ms)
    return {
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "p10": percentile(ordered, 0.10),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "stdev": statistics.stdev(ordered) if len(ordered) > 1 else None,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
        "samples": list(samples_ms),
    }


@dataclass
class RepeatPlan:
    repeat: int
    warmup: int
    # Bracket the measured repeats with cudaProfilerStart/Stop so ncu/nsys started with
    # capture off record only them.
    profiler_range: bool = False
    # With a sample (ncu), the range opens and closes around the sample's module spans
    # inside each measured repeat instead of around the whole repeats; the gate's hooks were
    # installed before the first step (so compile and graph capture saw them).
    sample: Any = None
    gate: ProfilerGate | None = None


def _range_start() -> None:
    torch.cuda.profiler.start()


def _range_stop() -> None:
    torch.cuda.profiler.stop()


# Gates by id: the custom op below takes plain ints, so compiled code can call it.
_GATES: dict[int, ProfilerGate] = {}


@torch.library.custom_op("aiperf::profiler_range", mutates_args=())
def profiler_range(x: torch.Tensor, gate_id: int, edge: int) -> torch.Tensor:
    """Open (edge 0) or close (edge 1) gate ``gate_id``'s profiler range, in order with the
    data flowing through ``x``. An opaque op rather than a Python hook so that torch.compile
    traces the step in one graph: a graph break inside the block loop made Dynamo run the
    whole decode eagerly. The copy is one small elementwise kernel at each edge."""
    gate = _GATES.get(gate_id)
    if gate is not None and gate.enabled:
        if edge == 0:
            gate.opened += 1
            gate.start()
        else:
            gate.stop()
    return x.clone()


@profiler_range.register_fake
def _profiler_range_fake(x: torch.Tensor, gate_id: int, edge: int) -> torch.Tensor:
    return torch.empty_like(x)


def _profiler_range_backward(_ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:
    return grad, None, None  # an identity for the data


profiler_range.register_autograd(_profiler_range_backward)


class ProfilerGate:
    """Forward hooks on a sample's module spans that open the cudaProfilerApi range before the
    first module and close it after the last — but only while ``enabled``.

    Installed before the step first runs, so torch.compile traces the hooks (Dynamo inlines
    the hooks a module has when it compiles and never sees ones added later) and graph capture
    records them shut. The range calls go through the ``aiperf::profiler_range`` custom op, so
    the compiled step stays one graph and opening the gate recompiles nothing (a recompile
    inside the range would hand ncu the autotuner's benchmark kernels). On CUDA-graph replay
    no Python runs: the sample's ``graph_bypass`` launches the captured kernels directly."""

    def __init__(self, spans: list[tuple[torch.nn.Module, torch.nn.Module]],
                 start: Callable[[], None] = _range_start,
                 stop: Callable[[], None] = _range_stop) -> None:
        self.enabled = False
        self.opened = 0
        self.start, self.stop = start, stop
        self.id = max(_GATES, default=0) + 1
        _GATES[self.id] = self
        gate_id = self.id

        def open_range(_module: torch.nn.Module, args: tuple[Any, ...]) -> Any:
            if not args or not isinstance(args[0], torch.Tensor):
                return None
            return (profiler_range(args[0], gate_id, 0), *args[1:])

        def close_range(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
            if isinstance(output, torch.Tensor):
                return profiler_range(output, gate_id, 1)
            if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
                return (profiler_range(output[0], gate_id, 1), *output[1:])
            return None

        self._handles = []
        for first, last in spans:
            self._handles.append(first.register_forward_pre_hook(open_range))
            self._handles.append(last.register_forward_hook(close_range))

    @contextlib.contextmanager
    def open(self) -> Iterator[ProfilerGate]:
        self.enabled = True
        try:
            yield self
        finally:
            self.enabled = False

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        _GATES.pop(self.id, None)


def run_repeats(step: Callable[[], Any], reset: Callable[[], None], device: torch.device,
                plan: RepeatPlan, on_step: Callable[[str, int, int], None]) -> list[float]:
    """Warm up, then time ``plan.repeat`` steps; returns the measured samples in ms."""
    timer = StepTimer(device)
    on_cuda = device.type == "cuda"
    for index in range(plan.warmup):
        reset()
        timer.time_ms(step)
        on_step("warmup", index + 1, plan.warmup)
    samples: list[float] = []
    sampled = plan.profiler_range and on_cuda and plan.sample is not None and plan.gate is not None
    whole_range = plan.profiler_range and on_cuda and not sampled
    if whole_range:
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
    with contextlib.ExitStack() as stack:
        if sampled:
            assert plan.gate is not None
            stack.enter_context(plan.gate.open())
            bypass = getattr(plan.sample, "graph_bypass", None)
            if bypass is not None:
                stack.enter_context(bypass())
        try:
            for index in range(plan.repeat):
                reset()
                if on_cuda:
                    torch.cuda.nvtx.range_push(STEP_RANGE)
                samples.append(timer.time_ms(step))
                if on_cuda:
                    torch.cuda.nvtx.range_pop()
                on_step("measure", index + 1, plan.repeat)
        finally:
            if whole_range:
                torch.cuda.synchronize()
                torch.cuda.profiler.stop()
    if sampled and plan.gate is not None and not plan.gate.opened:
        raise RuntimeError("the profiled sample's modules never ran in the measured step; "
                           "profile the whole step with --profiler-option scope=step")
    return samples


def time_generation(prefill: Callable[[], Any], decode_rest: Callable[[], int],
                    device: torch.device, repeats: int = 1) -> dict[str, float | None]:
    """TTFT (the prefill, which yields the first token) and TPOT (mean time per token of the
    remaining decode steps), medians over ``repeats`` full generations."""
    timer = StepTimer(device)
    ttft, tpot = [], []
    decoded: list[int] = []

    def decode_and_count() -> None:
        decoded.append(decode_rest())

    for _ in range(repeats):
        ttft.append(timer.time_ms(prefill))
        elapsed = timer.time_ms(decode_and_count)
        if decoded[-1] > 0:
            tpot.append(elapsed / decoded[-1])
    return {"ttft_ms": statistics.median(ttft),
            "tpot_ms": statistics.median(tpot) if tpot else None}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, source). GPU: the caching allocator's peak of allocated tensors. CPU: the
    process's peak resident set size (includes Python and torch themselves)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "torch.cuda.max_memory_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return (int(peak) if sys.platform == "darwin" else int(peak) * 1024), "process peak RSS"
