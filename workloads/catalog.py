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

# Mixture-of-experts decoders (workloads.moe / workloads.gptoss). "full" / "20b" fit one 80 GB
# GPU in bf16: ~15.5B parameters (31 GB) and ~20.9B parameters (42 GB).
MOE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 256, "batch": 2,
        "prompt_len": 32, "new_tokens": 4, "max_seq": 64, "dtype": "float32", "experts": 64,
        "top_k": 6, "moe_inter": 32, "shared_inter": 64, "gating": "sigmoid", "norm_topk": True,
    },
    "full": {
        "hidden": 2048, "layers": 26, "heads": 16, "kv_heads": 4, "vocab": 102400, "batch": 8,
        "prompt_len": 512, "new_tokens": 16, "max_seq": 1024, "dtype": "bfloat16",
        "experts": 64, "top_k": 6, "moe_inter": 1408, "shared_inter": 2816,
        "gating": "sigmoid", "norm_topk": True,
    },
}
_GPTOSS_COMMON: dict[str, Any] = {
    "gating": "softmax_topk", "activation": "gptoss", "expert_bias": True, "attn_bias": True,
    "sinks": True, "shared_inter": 0, "rope_theta": 150000.0, "norm_eps": 1e-5,
}
GPTOSS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        **_GPTOSS_COMMON, "hidden": 64, "layers": 2, "heads": 8, "kv_heads": 2, "head_dim": 16,
        "vocab": 256, "batch": 2, "prompt_len": 24, "new_tokens": 4, "max_seq": 32,
        "dtype": "float32", "experts": 32, "top_k": 4, "moe_inter": 64, "sliding_window": 8,
    },
    "20b": {
        **_GPTOSS_COMMON, "hidden": 2880, "layers": 24, "heads": 64, "kv_heads": 8,
        "head_dim": 64, "vocab": 201088, "batch": 4, "prompt_len": 512, "new_tokens": 16,
        "max_seq": 1024, "dtype": "bfloat16", "experts": 32, "top_k": 4, "moe_inter": 2880,
        "sliding_window": 128,
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
    "moe": WorkloadInfo(
        name="moe",
        title="MoE decoder (DeepSeek-R1 style)",
        description="64 routed experts top-6 plus a shared expert, sigmoid or softmax gating "
        "with normalization, GQA attention; reports router health (balance loss, Gini, "
        "entropy, load spread) against their targets.",
        module="workloads.moe",
        presets=MOE_PRESETS,
    ),
    "gptoss": WorkloadInfo(
        name="gptoss",
        title="MoE decoder shaped like gpt-oss-20b",
        description="24 layers, 32 experts top-4, hidden 2880, 64 query / 8 KV heads of dim 64, "
        "alternating 128-token sliding-window and full attention, attention sinks; random init.",
        module="workloads.gptoss",
        presets=GPTOSS_PRESETS,
        default_preset="tiny",
    ),
}

_DECODERS = ("dense", "moe", "gptoss")  # the generation workloads with the shared decode runtime

LAYERS: dict[str, LayerInfo] = {
    "L0": LayerInfo("L0", 0, "Eager baseline",
                    "Eager PyTorch in the preset's dtype (fp32 or bf16), default math settings."),
    "L1": LayerInfo("L1", 1, "TF32 / precision",
                    "TF32 matmuls and convolutions, float32 matmul precision 'high', "
                    "cudnn.benchmark on."),
    # Dense-decoder layers (workloads/layers/*): each is a documented transform; requirements
    # are checked in the child. L4 and L5 turn on L2's static KV cache when L2 is absent.
    "L2": LayerInfo("L2", 2, "Memory layout",
                    "Fused QKV and gate-up projections, contiguous weights, a preallocated "
                    "static KV cache written with index_copy_ at tensor positions (static "
                    "decode shapes), pinned host buffers on CUDA.", applies_to=_DECODERS),
    "L3": LayerInfo("L3", 3, "Attention kernels",
                    "SDPA (flash / cuDNN on CUDA, math on CPU); FlexAttention with a "
                    "block-sparse mask when the run has a sliding window (dense param "
                    "window, gpt-oss's 128-token layers) or attention sinks (gpt-oss).",
                    applies_to=_DECODERS),
    "L4": LayerInfo("L4", 4, "CUDA graphs",
                    "The decode step captured in one CUDA graph per (batch, tokens) bucket "
                    "and replayed (MoE: with the sync-free sorted expert dispatch).",
                    requires=("cuda",), applies_to=_DECODERS),
    "L5": LayerInfo("L5", 5, "torch.compile",
                    "The decode step compiled (param compile_mode, default "
                    "max-autotune-no-cudagraphs for dense, default for MoE, or "
                    "reduce-overhead); the prefill with compile_prefill_mode (default "
                    "'default'; MoE compiles it in prefill mode only).",
                    requires=("cuda", "triton"), applies_to=_DECODERS),
    "L5-fp8": LayerInfo("L5-fp8", 5, "FP8 weight GEMMs",
                        "e4m3 weights with per-row (default) or per-tensor scales (param "
                        "fp8_scaling); decode through a Triton FP8 GEMV, prefill through "
                        "torch._scaled_mm.", requires=("cuda", "cc>=8.9", "triton"),
                        applies_to=("dense",)),
    "L5-gemv": LayerInfo("L5-gemv", 5, "Triton GEMV",
                         "A bandwidth-tuned Triton GEMV for bf16 weight GEMMs with M <= 16 "
                         "(decode); cuBLAS above.", requires=("cuda", "triton"),
                         applies_to=("dense",)),
    "L6-fp8kv": LayerInfo("L6-fp8kv", 6, "FP8 KV cache",
                          "K/V stored as e4m3 with a per-layer scale (half the KV bytes).",
                          applies_to=("dense",)),
    "L6-paged": LayerInfo("L6-paged", 6, "Paged KV cache",
                          "K/V in fixed-size blocks behind a block table (param kv_block).",
                          applies_to=("dense",)),
    "L6-spec": LayerInfo("L6-spec", 6, "Speculative decoding",
                         "Greedy speculative decoding with a smaller dense draft (the first "
                         "draft_layers blocks), spec_k tokens per round; exact.",
                         applies_to=("dense",)),
    "L5-moe-fp8": LayerInfo("L5-moe-fp8", 5, "FP8 experts",
                            "MoE expert weights in FP8 e4m3 with per-row scales; FP8 grouped "
                            "GEMMs where the GPU supports them, emulated numerics elsewhere.",
                            applies_to=("moe", "gptoss")),
    "L6-moe-grouped": LayerInfo("L6-moe-grouped", 6, "Grouped-GEMM experts",
                                "MoE token sort/permute dispatch and grouped-GEMM experts "
                                "(torch._grouped_mm, else padded bmm) instead of a masked "
                                "loop over experts; decode on CUDA through a fused Triton "
                                "expert GEMV (bf16/fp16 or FP8 weights).",
                                applies_to=("moe", "gptoss")),
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


@dataclass(frozen=True)
class LayerSelection:
    """Layer names to run, and the layers a range left out (name -> why)."""

    names: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def select_layers(text: str | list[str], workload: str | None = None) -> LayerSelection:
    """'L0,L1' or 'L0-L3' (a range of levels) -> validated, ordered layer names.

    A range takes the layers of those levels that apply to ``workload`` (all when None) and
    reports the others in ``skipped`` with the reason; a layer named on its own is kept, and
    the run refuses it if it does not apply."""
    items = text if isinstance(text, list) else [t.strip() for t in text.split(",") if t.strip()]
    names: list[str] = []
    skipped: dict[str, str] = {}
    for item in items:
        if "-" in item and item.count("L") == 2 and all(p.strip().startswith("L") for p in item.split("-")):
            lo, hi = (int(p.strip()[1:]) for p in item.split("-"))
            for li in LAYERS.values():
                if not lo <= li.level <= hi:
                    continue
                if workload is None or not li.applies_to or workload in li.applies_to:
                    names.append(li.name)
                else:
                    skipped.setdefault(li.name, f"left out of {item.strip()}: applies to "
                                                f"{', '.join(li.applies_to)} only, not "
                                                f"{workload}")
        else:
            names.append(get_layer(item).name)
    seen: dict[str, None] = {}
    for n in ["L0", *names]:  # L0 is the base every stack starts from
        seen.setdefault(n, None)
    ordered = sorted(seen, key=lambda n: (LAYERS[n].level, n))
    return LayerSelection(ordered, {n: why for n, why in skipped.items() if n not in seen})


def parse_layers(text: str | list[str], workload: str | None = None) -> list[str]:
    """The names of ``select_layers`` (what a range skipped is dropped)."""
    return select_layers(text, workload).names


# Micro-workloads, the serving load test and the GPT-4-scale estimator (issue 5) live in their
# own torch-free module; it needs WorkloadInfo from here, so it is merged in last.
from workloads.micro_catalog import micro_workloads  # noqa: E402

WORKLOADS.update(micro_workloads())
