"""GPT-4-scale MoE memory and GPU-count ESTIMATE (seed 000). Torch-free, analytic only.

Nothing here is measured. The default architecture is the widely repeated public speculation
about GPT-4 (about 1.8T parameters: 120 layers, 16 experts with 2 active per token, roughly
0.25-0.3T active) — OpenAI has published no architecture; every figure is an input, override
any of them.

Layout model (inference; DP = 1; one model replica = TP x PP x CP GPUs):
  PP   splits the layers into ``pp`` stages of ceil(layers / pp); the worst stage also holds
       the larger of the embedding and the LM head.
  TP   splits attention and embedding/head weights; K/V heads split up to ``kv_heads`` ways
       (beyond that they are replicated).
  CP   splits the sequence: each of ``cp`` GPUs holds context / cp tokens of K/V and of the
       prefill activations; weights are replicated across CP.
  EP   spreads whole experts over ``ep`` GPUs of a stage (ep must divide both tp x cp and the
       expert count; no expert tensor parallelism); experts are replicated over the stage's
       other tp x cp / ep GPUs.
Per GPU = weights + KV cache (``batch`` sequences of ``context`` tokens) + activations (the
transients of one layer while prefilling ``prefill_tokens`` tokens per sequence with flash
attention — no T^2 scores — plus the MoE dispatch/combine buffers) + a fixed overhead (CUDA
context, workspaces). A layout fits when that is at most ``usable_fraction`` of GPU memory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from workloads.errors import WorkbenchError

BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}
GIB = 1024 ** 3


@dataclass(frozen=True)
class MoEArch:
    layers: int = 120
    hidden: int = 12288
    heads: int = 96
    kv_heads: int = 8
    head_dim: int = 128
    experts: int = 16
    top_k: int = 2
    expert_ff: int = 36864
    mlp_matrices: int = 2  # 2 = up/down (GELU); 3 = gate/up/down (SwiGLU)
    vocab: int = 100256


@dataclass(frozen=True)
class Layout:
    tp: int = 8
    pp: int = 1
    ep: int = 8
    cp: int = 1
    precision: str = "fp8"  # weights
    kv_precision: str = "fp8"
    activation_precision: str = "bf16"
    context: int = 131072
    batch: int = 1
    prefill_tokens: int | None = None  # default: the whole context in one prefill
    gpu_mem_gib: float = 80.0
    usable_fraction: float = 0.9
    overhead_gib: float = 3.0


@dataclass(frozen=True)
class Estimate:
    params_total: int
    params_active: int
    params_attention: int
    params_experts: int
    params_embedding: int
    weights_bytes_total: float
    kv_bytes_per_token: float
    kv_bytes_total: float
    gpus: int
    layers_per_stage: int
    weights_per_gpu: float
    kv_per_gpu: float
    activations_per_gpu: float
    overhead_per_gpu: float
    total_per_gpu: float
    budget_per_gpu: float
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bytes_of(precision: str, what: str) -> float:
    try:
        return BYTES[precision]
    except KeyError:
        raise WorkbenchError(f"unknown {what} precision {precision!r}",
                             f"choose one of: {', '.join(BYTES)}") from None


def check_layout(arch: MoEArch, layout: Layout) -> None:
    for name in ("tp", "pp", "ep", "cp", "context", "batch"):
        if getattr(layout, name) < 1:
            raise WorkbenchError(f"{name} must be >= 1, got {getattr(layout, name)}")
    if layout.pp > arch.layers:
        raise WorkbenchError(f"pp ({layout.pp}) exceeds the layer count ({arch.layers})")
    if (layout.tp * layout.cp) % layout.ep or arch.experts % layout.ep:
        raise WorkbenchError(f"ep ({layout.ep}) must divide tp x cp ({layout.tp * layout.cp}) "
                             f"and the expert count ({arch.experts})")
    if layout.context % layout.cp:
        raise WorkbenchError(f"context ({layout.context}) must divide evenly into cp "
                             f"({layout.cp}) shards")


def estimate(arch: MoEArch, layout: Layout) -> Estimate:
    check_layout(arch, layout)
    weight_b = _bytes_of(layout.precision, "weight")
    kv_b = _bytes_of(layout.kv_precision, "KV cache")
    act_b = _bytes_of(layout.activation_precision, "activation")
    q_dim, kv_dim = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    attention = arch.hidden * (2 * q_dim + 2 * kv_dim) + 2 * arch.hidden  # q,o,k,v + norms
    expert = arch.mlp_matrices * arch.hidden * arch.expert_ff
    router = arch.hidden * arch.experts
    embedding = 2 * arch.vocab * arch.hidden  # untied embedding and LM head
    per_layer = attention + router + arch.experts * expert
    total = arch.layers * per_layer + embedding
    active = arch.layers * (attention + router + arch.top_k * expert) + embedding

    stage_layers = math.ceil(arch.layers / layout.pp)
    weights_gpu = weight_b * (stage_layers * (attention + router) / layout.tp
                              + arch.vocab * arch.hidden / layout.tp
                              + stage_layers * arch.experts * expert / layout.ep)
    kv_per_token = 2 * arch.layers * kv_dim * kv_b
    kv_total = kv_per_token * layout.context * layout.batch
    kv_heads_gpu = math.ceil(arch.kv_heads / min(layout.tp, arch.kv_heads))
    kv_gpu = (2 * stage_layers * kv_heads_gpu * arch.head_dim * kv_b
              * layout.batch * layout.context / layout.cp)

    tokens = layout.batch * (layout.prefill_tokens or layout.context) / layout.cp
    # One layer's transients: residual, normed input, attention output (full hidden), the
    # local q/k/v shards, routed tokens' expert intermediates on this GPU (balanced routing),
    # and the all-to-all dispatch + combine buffers.
    attention_io = tokens * (3 * arch.hidden + (q_dim + 2 * kv_dim) / layout.tp)
    # A stage's tokens (all CP shards) x top_k land on ep expert GPUs (balanced routing;
    # conservatively, replicas of an expert do not split its tokens).
    routed = tokens * layout.cp * arch.top_k / layout.ep
    experts_io = routed * ((arch.mlp_matrices - 1) * arch.expert_ff + arch.hidden) \
        + 2 * tokens * arch.top_k * arch.hidden
    logits = layout.batch * arch.vocab * 4.0  # last position only, fp32
    activations = act_b * (attention_io + experts_io) + logits
    overhead = layout.overhead_gib * GIB
    per_gpu = weights_gpu + kv_gpu + activations + overhead
    budget = layout.gpu_mem_gib * GIB * layout.usable_fraction
    return Estimate(
        params_total=int(total), params_active=int(active),
        params_attention=int(arch.layers * attention),
        params_experts=int(arch.layers * arch.experts * expert), params_embedding=embedding,
        weights_bytes_total=total * weight_b, kv_bytes_per_token=kv_per_token,
        kv_bytes_total=kv_total, gpus=layout.tp * layout.pp * layout.cp,
        layers_per_stage=stage_layers, weights_per_gpu=weights_gpu, kv_per_gpu=kv_gpu,
        activations_per_gpu=activations, overhead_per_gpu=overhead, total_per_gpu=per_gpu,
        budget_per_gpu=budget, fits=per_gpu <= budget)


def minimum_pipeline(arch: MoEArch, layout: Layout) -> tuple[int | None, Estimate | None]:
    """The smallest PP (hence GPU count TP x PP x CP) at which the layout fits; (None, None)
    if it does not fit even with one layer per stage."""
    check_layout(arch, replace(layout, pp=1))
    for pp in range(1, arch.layers + 1):
        if pp > 1 and math.ceil(arch.layers / pp) == math.ceil(arch.layers / (pp - 1)):
            continue  # same stage size as the previous PP: no change in memory
        result = estimate(arch, replace(layout, pp=pp))
        if result.fits:
            return pp, result
    return None, None


def scenario_rows(arch: MoEArch, layout: Layout, cp_long: int = 8) -> list[dict[str, Any]]:
    """Minimum GPU counts for 8K and 128K contexts, bf16 and fp8 weights/KV, without and
    with context parallelism, keeping TP from ``layout``; EP is the largest that divides both
    the experts and the stage's TP x CP GPUs."""
    rows: list[dict[str, Any]] = []
    for context in (8192, 131072):
        for precision in ("bf16", "fp8"):
            for cp in sorted({1, cp_long if context > 8192 else 1}):
                # CP adds GPUs to each stage: let EP grow onto them where the experts allow.
                ep = max(d for d in range(1, arch.experts + 1)
                         if arch.experts % d == 0 and (layout.tp * cp) % d == 0)
                trial = replace(layout, context=context, precision=precision,
                                kv_precision=precision, cp=cp, ep=ep, prefill_tokens=None)
                try:
                    pp, result = minimum_pipeline(arch, trial)
                except WorkbenchError as exc:
                    rows.append({"context": context, "precision": precision, "cp": cp,
                                 "ep": ep, "min_pp": None, "min_gpus": None, "note": exc.one_line()})
                    continue
                rows.append({"context": context, "precision": precision, "cp": cp,
                             "ep": ep, "min_pp": pp, "min_gpus": result.gpus if result else None,
                             "per_gpu_gib": result.total_per_gpu / GIB if result else None,
                             "note": "" if result else "does not fit at any PP"})
    return rows


def arch_from_params(params: dict[str, Any]) -> MoEArch:
    known = set(MoEArch.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise WorkbenchError(f"unknown architecture params: {', '.join(unknown)}",
                             f"known: {', '.join(sorted(known))}")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WorkbenchError(f"architecture param {key} must be a positive integer, "
                                 f"got {value!r}")
    arch = MoEArch(**params)
    if arch.top_k > arch.experts:
        raise WorkbenchError(f"top_k ({arch.top_k}) exceeds experts ({arch.experts})")
    return arch
