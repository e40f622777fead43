"""What this machine can run, learned without torch: the GPUs (through NVML), which layers
their requirements allow (``workloads.requirements``, the child's own check), which profilers
are installed, and the memory a run would take (an analytic estimate for a GPU)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass

from profilers.base import Capability
from profilers.registry import PROFILER_REGISTRY
from workloads.requirements import DeviceFacts, first_unmet
from workloads.spec import RunSpec


@dataclass(frozen=True)
class DeviceProbe:
    """What the front ends can learn about the GPUs without torch (through NVML, if present)."""

    cuda: bool = False
    gpu_count: int = 0
    name: str | None = None
    cc: tuple[int, int] | None = None
    memory_bytes: int | None = None
    reason: str | None = None  # why cuda is False


def probe_devices() -> DeviceProbe:
    try:
        import pynvml  # nvidia-ml-py; optional at run time
    except ImportError:
        return DeviceProbe(reason="NVML (nvidia-ml-py) is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return DeviceProbe(reason=f"no NVIDIA driver ({type(exc).__name__})")
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        if count == 0:
            return DeviceProbe(reason="NVML sees no GPU")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        mem = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        return DeviceProbe(cuda=True, gpu_count=count, name=name, cc=(int(major), int(minor)),
                           memory_bytes=mem)
    except Exception as exc:
        return DeviceProbe(reason=f"NVML query failed ({type(exc).__name__})")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _same_python() -> bool:
    """Whether workloads run in this interpreter (else $AIPERF_WORKLOAD_PYTHON's packages are
    not ours to look at: what it has installed is checked in the child)."""
    other = os.environ.get("AIPERF_WORKLOAD_PYTHON")
    return not other or os.path.realpath(other) == os.path.realpath(sys.executable)


def _torch_version() -> str | None:
    try:
        return importlib.metadata.version("torch")  # reads metadata; does not import torch
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_flex_attention(version: str | None) -> bool:
    if version is None:
        return False
    digits = [int("".join(c for c in part if c.isdigit()) or 0) for part in version.split(".")[:2]]
    return tuple(digits) >= (2, 5)


def device_facts(probe: DeviceProbe, device: str = "auto") -> DeviceFacts:
    """The facts a layer's requirements are checked against, for a run on ``device``."""
    runs_on = "cpu" if device == "cpu" or not probe.cuda else "cuda"
    if _same_python():
        version = _torch_version()
        triton = importlib.util.find_spec("triton") is not None
        flex = _has_flex_attention(version)
    else:  # unknown here: taken as met, the child checks them where torch is
        version, triton, flex = None, True, True
    return DeviceFacts(cuda_available=probe.cuda, device_type=runs_on, cc=probe.cc,
                       gpu_count=probe.gpu_count, device_name=probe.name, triton=triton,
                       flex_attention=flex, torch_version=version)


def layer_blocker(requires: tuple[str, ...], probe: DeviceProbe, device: str = "auto"
                  ) -> str | None:
    """Why a layer with these requirements cannot run here (None: it can)."""
    return first_unmet(requires, device_facts(probe, device))


def profiler_capabilities() -> dict[str, Capability]:
    """Each profiler wrapper: can it run here, or why not (the app disables what cannot)."""
    return {name: entry.check() for name, entry in PROFILER_REGISTRY.items()}


@dataclass(frozen=True)
class MemoryEstimate:
    """An analytic estimate of the GPU memory a run would take (the same on a CPU box)."""

    weights_bytes: float
    kv_cache_bytes: float
    activations_bytes: float
    source: str  # where the estimate came from, in words

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activations_bytes


def estimate_memory(spec: RunSpec) -> MemoryEstimate | None:
    """workloads.estimate's analytic estimate (torch-free); None where it has none."""
    if spec.workload != "dense":
        return None
    from workloads.estimate import estimate_for_preset

    result = estimate_for_preset(spec.preset, {k: v for k, v in spec.params.items()
                                               if k not in ("mode", "unmet_layers")})
    return MemoryEstimate(weights_bytes=float(result.weights_bytes),
                          kv_cache_bytes=float(result.kv_cache_bytes),
                          activations_bytes=float(result.activations_bytes),
                          source="analytic estimate of the model's GPU memory")
