"""The requirement strings of ``catalog.LayerInfo.requires``: one parser and one check, used by
the child (facts from torch) and by the front ends before anything runs (facts from NVML).

Requirements: ``cuda``, ``cc>=X.Y`` (compute capability), ``triton``, ``flex_attention``,
``multi_gpu``. Each check answers None (met) or the reason it is not, phrased for the user;
an unknown requirement is never met. Torch-free: the child builds its ``DeviceFacts`` with
``facts_from_torch``, which imports torch only when called.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from workloads.errors import WorkbenchError

KINDS = ("cuda", "cc", "triton", "flex_attention", "multi_gpu")


@dataclass(frozen=True)
class Requirement:
    kind: str  # one of KINDS
    min_cc: tuple[int, ...] = ()  # cc only
    text: str = ""


@dataclass(frozen=True)
class DeviceFacts:
    """What a requirement is checked against."""

    cuda_available: bool  # a CUDA GPU exists
    device_type: str  # where the run goes: "cuda" | "cpu"
    cc: tuple[int, int] | None = None
    gpu_count: int = 0
    device_name: str | None = None
    triton: bool = False
    flex_attention: bool = False
    torch_version: str | None = None


def parse_requirement(text: str) -> Requirement:
    if text.startswith("cc>="):
        try:
            wanted = tuple(int(part) for part in text[len("cc>="):].split("."))
        except ValueError:
            raise WorkbenchError(f"malformed requirement {text!r}", "e.g. cc>=8.9") from None
        return Requirement("cc", wanted, text)
    if text in KINDS and text != "cc":
        return Requirement(text, (), text)
    raise WorkbenchError(f"unknown requirement {text!r}", f"known: {', '.join(KINDS)}, cc>=X.Y")


def _cuda_reason(facts: DeviceFacts) -> str | None:
    if not facts.cuda_available:
        return "needs a CUDA GPU (none available)"
    if facts.device_type != "cuda":
        return f"needs a CUDA GPU (run is on {facts.device_type})"
    return None


def unmet_reason(requirement: str, facts: DeviceFacts) -> str | None:
    """None if ``requirement`` is met, else why not (an unknown one is never met)."""
    try:
        req = parse_requirement(requirement)
    except WorkbenchError as exc:
        return exc.message
    if req.kind == "cuda":
        return _cuda_reason(facts)
    if req.kind == "cc":
        shown = requirement[len("cc>="):]
        reason = _cuda_reason(facts)
        if reason:
            return reason.replace("needs a CUDA GPU", f"needs compute capability >= {shown}")
        if facts.cc is None:
            return f"needs compute capability >= {shown} (this GPU's is unknown)"
        if facts.cc < req.min_cc:
            return (f"needs compute capability >= {shown}, "
                    f"this GPU is {facts.cc[0]}.{facts.cc[1]}")
        return None
    if req.kind == "triton":
        return "needs triton (not installed)" if not facts.triton else _cuda_reason(facts)
    if req.kind == "flex_attention":
        return None if facts.flex_attention else \
            f"needs flex_attention (torch {facts.torch_version or 'not installed'} has none)"
    count = facts.gpu_count if facts.cuda_available else 0  # multi_gpu
    return None if count >= 2 else f"needs 2 or more CUDA GPUs ({count} available)"


def first_unmet(requirements: tuple[str, ...] | list[str], facts: DeviceFacts) -> str | None:
    """The reason for the first unmet requirement, or None if all are met."""
    for requirement in requirements:
        reason = unmet_reason(requirement, facts)
        if reason:
            return reason
    return None


def facts_from_torch(device: Any) -> DeviceFacts:
    """The child's facts: ``device`` is the torch.device the run uses."""
    import torch

    cuda = torch.cuda.is_available()
    try:
        importlib.import_module("torch.nn.attention.flex_attention")
        flex = True
    except ImportError:
        flex = False
    on_cuda = cuda and device.type == "cuda"
    cc = tuple(torch.cuda.get_device_capability(device)) if on_cuda else None
    return DeviceFacts(
        cuda_available=cuda, device_type=device.type,
        cc=(int(cc[0]), int(cc[1])) if cc else None,
        gpu_count=torch.cuda.device_count() if cuda else 0,
        device_name=torch.cuda.get_device_name(device) if on_cuda else None,
        triton=importlib.util.find_spec("triton") is not None, flex_attention=flex,
        torch_version=str(torch.__version__))
