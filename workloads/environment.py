"""Facts about where a run ran, for result.json ``env``. Missing facts are None, never 0."""

from __future__ import annotations

import importlib
import platform
import sys
from typing import Any

import torch


def _nvidia_driver_version() -> str | None:
    # torch knows the CUDA runtime, not the driver; NVML does, when it is installed.
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


def resolve_device(requested: str) -> torch.device:
    """"auto" -> cuda when available, else cpu. "cuda" without a GPU is the caller's error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def collect_env(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device_name": platform.processor() or platform.machine(),
        "device_kind": device.type,
        "cc": None,
        "driver": None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "num_threads": torch.get_num_threads(),
        "sm_count": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, cc=f"{props.major}.{props.minor}",
                   sm_count=props.multi_processor_count, driver=_nvidia_driver_version())
    return env
