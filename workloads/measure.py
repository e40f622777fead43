"""Timing discipline for the measured step, latency statistics and peak memory.

CUDA: a pair of CUDA events around each repeat, then a synchronize, so the time is device
time of exactly that repeat and Python launch overhead shows up only where it stalls the GPU.
CPU: ``time.perf_counter`` around the call (CPU ops run synchronously). Warm-up repeats are
never part of the samples. ``reset`` runs outside the timed region.
"""

from __future__ import annotations

import contextlib
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

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


def percentile(sorted_samples: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = (len(sorted_samples) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_samples[low] * (1 - weight) + sorted_samples[high] * weight


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
    # inside each measured repeat instead of around the whole repeats.
    sample: Any = None


@contextlib.contextmanager
def sampled_profiler_range(spans: list[tuple[torch.nn.Module, torch.nn.Module]]
                           ) -> Iterator[list[int]]:
    """Forward hooks that call cudaProfilerStart before each span's first module and
    cudaProfilerStop after its last; yields a one-element list counting opened ranges."""
    opened = [0]

    def start(*_: Any) -> None:
        opened[0] += 1
        torch.cuda.profiler.start()

    def stop(*_: Any) -> None:
        torch.cuda.profiler.stop()

    handles = []
    for first, last in spans:
        handles.append(first.register_forward_pre_hook(start))
        handles.append(last.register_forward_hook(stop))
    try:
        yield opened
    finally:
        for handle in handles:
            handle.remove()


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
    whole_range = plan.profiler_range and on_cuda and plan.sample is None
    sampled = plan.profiler_range and on_cuda and plan.sample is not None
    if whole_range:
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(sampled_profiler_range(plan.sample.spans)) \
            if sampled else None
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
    if opened is not None and not opened[0]:
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
