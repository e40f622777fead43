"""Torch-free registry of workloads, presets and optimization layers.

The app and the CLI list and validate from here without importing torch. Each entry names the
module that implements it (imported only in the child process). Requirements are strings that
``workloads.requirements`` checks inside the child where torch is available:
``cuda``, ``cc>=8.9``, ``triton``, ``flex_attention``, ``multi_gpu``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workloads.errors import WorkbenchError


@dataclass(frozen=True)
class LayerInfo:
    name: str  # "L1", or a finer-grained id like "L5-fp8"
    level: int  # 0..6
    title: str
    description: str
    requires: tuple[str, ...] = ()
    applies_to: tuple[str, ...] = ()  # workload names; empty = all


@dataclass(frozen=True)
class WorkloadInfo:
    name: str
    title: str
    description: str
    module: str  # "workloads.dense" — imported only in the child process
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_preset: str = "tiny"
    kind: str = "model"  # model | micro | analytic


# Parameters every generation workload understands; presets fill in the model shape.
DENSE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "mlp": 384, "vocab": 512,
        "batch": 2, "prompt_len": 32, "new_tokens": 8, "max_seq": 64, "dtype": "float32",
        "rope_theta": 500000.0, "norm_eps": 1e-5,
    },
    "small": {
        "hidden": 1024, "layers": 8, "heads": 16, "kv_heads": 4, "mlp": 2816, "vocab": 32000,
        "batch": 1, "prompt_len": 128, "new_tokens": 32, "max_seq": 512, "dtype": "bfloat16",
        "rope_theta": 500000.0, "norm_eps": 1e-5,
    },
    "llama-3.1-8b": {
        "hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "mlp": 14336,
        "vocab": 128256, "batch": 1, "prompt_len": 128, "new_tokens": 128, "max_seq": 1024,
        "dtype": "bfloat16", "rope_theta": 500000.0, "norm_eps": 1e-5,
    },
}

WORKLOADS: dict[str, WorkloadInfo] = {
    "dense": WorkloadInfo(
        name="dense",
        title="Dense decoder (Llama-3 style)",
        description="RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, KV cache; random "
        "weights from a seed. Measures prefill and batch-B decode.",
        module="workloads.dense",
        presets=DENSE_PRESETS,
    ),
}

LAYERS: dict[str, LayerInfo] = {
    "L0": LayerInfo("L0", 0, "Eager baseline",
                    "Eager PyTorch in the preset's dtype (fp32 or bf16), default math settings."),
    "L1": LayerInfo("L1", 1, "TF32 / precision",
                    "TF32 matmuls and convolutions, float32 matmul precision 'high', "
                    "cudnn.benchmark on."),
}


def list_workloads() -> list[WorkloadInfo]:
    return list(WORKLOADS.values())


def get_workload(name: str) -> WorkloadInfo:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkbenchError(
            f"unknown workload {name!r}", f"choose one of: {', '.join(sorted(WORKLOADS))}"
        ) from None


def get_preset(workload: str, preset: str) -> dict[str, Any]:
    info = get_workload(workload)
    try:
        return dict(info.presets[preset])
    except KeyError:
        raise WorkbenchError(
            f"unknown preset {preset!r} for workload {workload!r}",
            f"choose one of: {', '.join(info.presets)}",
        ) from None


def get_layer(name: str) -> LayerInfo:
    try:
        return LAYERS[name]
    except KeyError:
        raise WorkbenchError(
            f"unknown layer {name!r}", f"choose from: {', '.join(LAYERS)}"
        ) from None


def parse_layers(text: str | list[str]) -> list[str]:
    """'L0,L1' or 'L0-L3' (a range of levels) -> validated, ordered layer names."""
    items = text if isinstance(text, list) else [t.strip() for t in text.split(",") if t.strip()]
    names: list[str] = []
    for item in items:
        if "-" in item and item.count("L") == 2 and all(p.strip().startswith("L") for p in item.split("-")):
            lo, hi = (int(p.strip()[1:]) for p in item.split("-"))
            names += [li.name for li in LAYERS.values() if lo <= li.level <= hi]
        else:
            names.append(get_layer(item).name)
    seen: dict[str, None] = {}
    for n in ["L0", *names]:  # L0 is the base every stack starts from
        seen.setdefault(n, None)
    return sorted(seen, key=lambda n: (LAYERS[n].level, n))
