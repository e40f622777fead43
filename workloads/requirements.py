"""Checks for the requirement strings in ``catalog.LayerInfo.requires``, run inside the child.

Each check answers None (met) or the reason it is not, phrased for the user:
``cuda``, ``cc>=X.Y`` (compute capability), ``triton``, ``flex_attention``, ``multi_gpu``.
"""

from __future__ import annotations

import importlib.util

import torch


def _cuda_reason(device: torch.device) -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (none available)"
    if device.type != "cuda":
        return f"needs a CUDA GPU (run is on {device.type})"
    return None


def _compute_capability_reason(requirement: str, device: torch.device) -> str | None:
    text = requirement[len("cc>="):]
    try:
        wanted = tuple(int(part) for part in text.split("."))
    except ValueError:
        return f"malformed requirement {requirement!r}"
    reason = _cuda_reason(device)
    if reason:
        return reason.replace("needs a CUDA GPU", f"needs compute capability >= {text}")
    have = torch.cuda.get_device_capability(device)
    if have < wanted:
        return f"needs compute capability >= {text}, this GPU is {have[0]}.{have[1]}"
    return None


def _triton_reason(device: torch.device) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "needs triton (not installed)"
    return _cuda_reason(device)


def _flex_attention_reason(device: torch.device) -> str | None:
    try:
        importlib.import_module("torch.nn.attention.flex_attention")
    except ImportError:
        return f"needs flex_attention (torch {torch.__version__} has none)"
    return None


def _multi_gpu_reason(device: torch.device) -> str | None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return None if count >= 2 else f"needs 2 or more CUDA GPUs ({count} available)"


def unmet_reason(requirement: str, device: torch.device) -> str | None:
    """None if ``requirement`` is met on ``device``, else why not."""
    if requirement.startswith("cc>="):
        return _compute_capability_reason(requirement, device)
    checks = {"cuda": _cuda_reason, "triton": _triton_reason,
              "flex_attention": _flex_attention_reason, "multi_gpu": _multi_gpu_reason}
    check = checks.get(requirement)
    if check is None:
        return f"unknown requirement {requirement!r}"
    return check(device)


def first_unmet(requirements: tuple[str, ...] | list[str], device: torch.device) -> str | None:
    """The reason for the first unmet requirement, or None if all are met."""
    for requirement in requirements:
        reason = unmet_reason(requirement, device)
        if reason:
            return reason
    return None
