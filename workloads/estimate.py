"""Analytic size, FLOP and memory figures for the dense decoder. Torch-free.

The front end uses ``estimate_dense_memory`` to show what a run needs and refuse one that
cannot fit; ``workloads.dense`` uses the same counts for its FLOPs and bytes per step, so the
two never disagree. The model is Llama-3 style with untied embeddings and no biases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workloads.catalog import get_preset
from workloads.errors import WorkbenchError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise WorkbenchError(
            f"unsupported dtype {dtype!r}", f"choose one of: {', '.join(DTYPE_BYTES)}"
        ) from None


@dataclass(frozen=True)
class DenseParamCounts:
    per_layer_matmul: int  # q, k, v, o, gate, up, down
    per_layer_norm: int  # the two RMSNorm weights
    embedding: int  # the token table (a gather: no FLOPs, only B rows read per step)
    lm_head: int
    final_norm: int
    layers: int

    @property
    def layer_matmul(self) -> int:
        return self.per_layer_matmul * self.layers

    @property
    def matmul(self) -> int:
        """Weights that take part in matmuls: 2 FLOPs each per token."""
        return self.layer_matmul + self.lm_head

    @property
    def total(self) -> int:
        return (self.matmul + self.embedding + self.final_norm
                + self.per_layer_norm * self.layers)


def dense_param_counts(shape: dict[str, Any]) -> DenseParamCounts:
    hidden, heads, kv_heads = int(shape["hidden"]), int(shape["heads"]), int(shape["kv_heads"])
    head_dim = hidden // heads
    kv_dim = kv_heads * head_dim
    attention = hidden * hidden * 2 + hidden * kv_dim * 2  # q, o + k, v
    mlp = 3 * hidden * int(shape["mlp"])
    vocab = int(shape["vocab"])
    return DenseParamCounts(
        per_layer_matmul=attention + mlp, per_layer_norm=2 * hidden,
        embedding=vocab * hidden, lm_head=vocab * hidden, final_norm=hidden,
        layers=int(shape["layers"]),
    )


def kv_bytes_per_token(shape: dict[str, Any]) -> int:
    """K and V of one token over all layers."""
    head_dim = int(shape["hidden"]) // int(shape["heads"])
    return (2 * int(shape["layers"]) * int(shape["kv_heads"]) * head_dim
            * dtype_bytes(shape["dtype"]))


def attention_flops(shape: dict[str, Any], queries: int, keys: int) -> int:
    """QK^T and PV for ``queries`` tokens each attending ``keys`` keys, over all layers."""
    return 4 * int(shape["hidden"]) * queries * keys * int(shape["layers"])


def decode_flops(shape: dict[str, Any], context: int) -> int:
    """One decode step for the batch: each token attends ``context`` keys (itself included).
    The embedding is a gather and is not counted; norms, RoPE and softmax are ignored (<1%)."""
    batch = int(shape["batch"])
    counts = dense_param_counts(shape)
    return 2 * counts.matmul * batch + attention_flops(shape, batch, context)


def prefill_flops(shape: dict[str, Any], prompt_len: int) -> int:
    """Prefill of ``prompt_len`` tokens: useful causal attention (token i sees i+1 keys), and
    the LM head only for the last position (only that one's logits are needed)."""
    batch = int(shape["batch"])
    counts = dense_param_counts(shape)
    causal_pairs = prompt_len * (prompt_len + 1) // 2
    return (2 * counts.layer_matmul * batch * prompt_len + 2 * counts.lm_head * batch
            + 4 * int(shape["hidden"]) * batch * causal_pairs * int(shape["layers"]))


def decode_bytes(shape: dict[str, Any], context: int) -> int:
    """Minimum DRAM traffic of one decode step: every weight once, the batch's embedding rows,
    the KV cache read over ``context`` positions and the new K/V written."""
    batch = int(shape["batch"])
    elt = dtype_bytes(shape["dtype"])
    counts = dense_param_counts(shape)
    weights = (counts.matmul + counts.final_norm + counts.per_layer_norm * counts.layers) * elt
    embedding_rows = batch * int(shape["hidden"]) * elt
    kv = kv_bytes_per_token(shape) * batch * (context + 1)  # read context, write one
    return weights + embedding_rows + kv


def prefill_bytes(shape: dict[str, Any], prompt_len: int) -> int:
    """Minimum DRAM traffic of a prefill: weights once, embedding rows, K/V written."""
    batch = int(shape["batch"])
    elt = dtype_bytes(shape["dtype"])
    counts = dense_param_counts(shape)
    weights = (counts.matmul + counts.final_norm + counts.per_layer_norm * counts.layers) * elt
    embedding_rows = batch * prompt_len * int(shape["hidden"]) * elt
    return weights + embedding_rows + kv_bytes_per_token(shape) * batch * prompt_len


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    weights_bytes: int
    kv_cache_bytes: int
    activations_bytes: int  # rough: the largest transients of one layer during prefill
    total_bytes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def estimate_dense_memory(shape: dict[str, Any]) -> MemoryEstimate:
    """Device memory a dense run needs: weights, the preallocated KV cache (batch x max_seq),
    and a rough bound on activations (eager attention scores in fp32, SwiGLU intermediates,
    the residual stream, fp32 logits). Allocator overhead and the CUDA context are not
    included; leave ~1-2 GB of headroom on a GPU."""
    elt = dtype_bytes(shape["dtype"])
    batch, prompt_len = int(shape["batch"]), int(shape["prompt_len"])
    hidden, heads, vocab = int(shape["hidden"]), int(shape["heads"]), int(shape["vocab"])
    counts = dense_param_counts(shape)
    weights = counts.total * elt
    kv_cache = kv_bytes_per_token(shape) * batch * int(shape["max_seq"])
    tokens = batch * prompt_len
    scores = batch * heads * prompt_len * prompt_len * (4 + elt)  # fp32 softmax + cast copy
    mlp = 3 * tokens * int(shape["mlp"]) * elt  # gate, up, their product
    residual = 4 * tokens * hidden * elt
    logits = batch * vocab * (elt + 4)
    activations = scores + mlp + residual + logits
    return MemoryEstimate(
        params=counts.total, weights_bytes=weights, kv_cache_bytes=kv_cache,
        activations_bytes=activations, total_bytes=weights + kv_cache + activations,
    )


def estimate_for_preset(preset: str, overrides: dict[str, Any] | None = None
                        ) -> MemoryEstimate:
    """Memory estimate for a dense preset with spec params applied on top."""
    shape = get_preset("dense", preset)
    shape.update(overrides or {})
    try:
        return estimate_dense_memory(shape)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        # Bad overrides are the user's to fix; the child's validation says exactly which.
        raise WorkbenchError(f"cannot estimate memory for these params: {exc!r}") from None
