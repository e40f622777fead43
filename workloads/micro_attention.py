"""Attention micro-workload: naive materialized softmax(QK^T)V vs SDPA vs FlexAttention.

Masks (params["mask"]): ``causal``; ``sliding`` (causal, a query sees the last ``window``
keys); ``block_sparse`` (causal, a query block sees its own block and every ``stride``-th key
block — the fixed "local + strided" pattern of the Sparse Transformer); ``none``.

Variants:
  naive  the baseline: scores [B, H, T, T] materialized, masked with a dense boolean mask,
         softmax in fp32, then @ V. Memory grows with T^2; it does not fit at 32K.
  sdpa   torch.nn.functional.scaled_dot_product_attention: ``is_causal`` for the causal mask
         (flash / cuDNN kernels on CUDA), an explicit boolean mask otherwise (which rules out
         the flash kernels: memory-efficient or math backend).
  flex   torch.nn.attention.flex_attention with a BlockMask built once from the mask
         predicate (fully masked blocks are skipped); compiled on CUDA, eager on CPU (where it
         materializes scores, so it is a correctness path there, not a fast one).

The parity reference is the naive math computed in query chunks (``ref_chunk`` rows at a
time): identical arithmetic per row, bounded memory, so parity holds at 32K too. The step's
own peak memory (above resident inputs) is reported in ``extra.step_peak_mem_bytes`` (CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from workloads.errors import WorkbenchError
from workloads.micro_base import MicroWorkload, check_params, dtype_of, positive_int

MASKS = ("causal", "sliding", "block_sparse", "none")
KNOWN = ("batch", "heads", "kv_heads", "seq", "head_dim", "dtype", "mask", "window", "block",
         "stride", "variant", "ref_chunk")
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}

MaskMod = Callable[[Any, Any, Any, Any], Any]


def mask_predicate(mask: str, window: int, block: int, stride: int) -> MaskMod:
    """(batch, head, q_idx, kv_idx) -> allowed; works on ints and on index tensors alike."""
    if mask == "causal":
        return lambda b, h, q, k: q >= k
    if mask == "sliding":
        return lambda b, h, q, k: (q >= k) & (q - k < window)
    if mask == "block_sparse":
        return lambda b, h, q, k: (q >= k) & (((q // block) == (k // block))
                                             | ((k // block) % stride == 0))
    return lambda b, h, q, k: (q >= 0) & (k >= 0)


def allowed_pairs(mask: str, seq: int, window: int, block: int, stride: int) -> int:
    """Number of (query, key) pairs the mask allows — exact, without a T x T tensor."""
    if mask == "none":
        return seq * seq
    if mask == "causal":
        return seq * (seq + 1) // 2
    if mask == "sliding":
        full = min(window, seq)
        return full * (full + 1) // 2 + (seq - full) * window
    total = 0
    for q in range(seq):  # block_sparse: own block's causal part + earlier strided blocks
        q_block = q // block
        total += q - q_block * block + 1 + block * ((q_block + stride - 1) // stride)
    return total


def dense_mask(predicate: MaskMod, seq: int, device: torch.device) -> torch.Tensor:
    q = torch.arange(seq, device=device)[:, None]
    k = torch.arange(seq, device=device)[None, :]
    return predicate(0, 0, q, k)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor
                    ) -> torch.Tensor:
    """q [B, H, Tq, D], k/v [B, H, Tk, D] (already expanded to H), allowed [Tq, Tk]."""
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = scores.float().softmax(dim=-1).to(v.dtype)
    return probs @ v


class AttentionWorkload(MicroWorkload):
    name = "attention"
    baseline = "naive"
    default_variant = "sdpa"
    variants = {"naive": (), "sdpa": (), "flex": ("flex_attention",)}

    def setup(self, params: dict[str, Any], seed: int) -> None:
        check_params(self.name, params, KNOWN)
        shape = {key: positive_int(self.name, params, key)
                 for key in ("batch", "heads", "kv_heads", "seq", "head_dim", "window", "block",
                             "stride", "ref_chunk")}
        self.mask = params.get("mask", "causal")
        if self.mask not in MASKS:
            raise WorkbenchError(f"unknown attention mask {self.mask!r}",
                                 f"choose one of: {', '.join(MASKS)}")
        if shape["heads"] % shape["kv_heads"]:
            raise WorkbenchError(f"heads ({shape['heads']}) must be a multiple of kv_heads "
                                 f"({shape['kv_heads']})")
        self.dtype = dtype_of(self.name, params.get("dtype", "float32"))
        self.compute_precision = PRECISION_OF_DTYPE[self.dtype]
        self.shape = shape
        seq = shape["seq"]
        self.predicate = mask_predicate(self.mask, shape["window"], shape["block"],
                                        shape["stride"])
        self.pairs = allowed_pairs(self.mask, seq, shape["window"], shape["block"],
                                   shape["stride"])
        self._dense_mask: torch.Tensor | None = None
        self._block_mask: Any = None
        self._flex: Any = None
        if self.variant == "flex":
            self._build_flex()
        self.facts.update(mask=self.mask, shape=dict(shape), mask_density=self.pairs / seq ** 2)

    def _build_flex(self) -> None:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        seq = self.shape["seq"]
        self._block_mask = create_block_mask(self.predicate, None, None, seq, seq,
                                             device=str(self.device))
        # Eager flex materializes the scores; compiled flex is the fused kernel (CUDA).
        self._flex = torch.compile(flex_attention) if self.device.type == "cuda" \
            else flex_attention
        self.facts["flex_compiled"] = self.device.type == "cuda"

    def make_inputs(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        s = self.shape
        q_shape = (s["batch"], s["heads"], s["seq"], s["head_dim"])
        kv_shape = (s["batch"], s["kv_heads"], s["seq"], s["head_dim"])
        # Drawn on the CPU so every device sees the same numbers for a seed.
        q, k, v = (torch.randn(shape, generator=generator)
                   for shape in (q_shape, kv_shape, kv_shape))
        return tuple(t.to(self.device, self.dtype) for t in (q, k, v))  # type: ignore[return-value]

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        group = self.shape["heads"] // self.shape["kv_heads"]
        return t if group == 1 else t.repeat_interleave(group, dim=1)

    def _allowed(self) -> torch.Tensor:
        if self._dense_mask is None:
            self._dense_mask = dense_mask(self.predicate, self.shape["seq"], self.device)
        return self._dense_mask

    def run_variant(self, variant: str, inputs: Any) -> torch.Tensor:
        q, k, v = inputs
        if variant == "naive":
            return naive_attention(q, self._expand(k), self._expand(v), self._allowed())
        gqa = self.shape["heads"] != self.shape["kv_heads"]
        if variant == "sdpa":
            if self.mask == "causal":
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            if self.mask == "none":
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=self._allowed(),
                                                  enable_gqa=gqa)
        if self._flex is None:
            self._build_flex()
        return self._flex(q, k, v, block_mask=self._block_mask, enable_gqa=gqa)

    def reference_output(self, inputs: Any) -> torch.Tensor:
        q, k, v = inputs
        k, v = self._expand(k), self._expand(v)
        seq, chunk = self.shape["seq"], self.shape["ref_chunk"]
        keys = torch.arange(seq, device=self.device)[None, :]
        pieces = []
        for start in range(0, seq, chunk):
            rows = torch.arange(start, min(start + chunk, seq), device=self.device)[:, None]
            pieces.append(naive_attention(q[:, :, start:start + chunk], k, v,
                                          self.predicate(0, 0, rows, keys)))
        return torch.cat(pieces, dim=2)

    def tokens_per_step(self) -> int:
        return self.shape["batch"] * self.shape["seq"]

    def flops_per_step(self) -> float | None:
        """Useful work: QK^T and PV over the pairs the mask allows (naive computes all T^2
        pairs; the figure is the same for every variant so TFLOP/s compare)."""
        s = self.shape
        return 4.0 * s["batch"] * s["heads"] * s["head_dim"] * self.pairs

    def bytes_per_step(self) -> float | None:
        s = self.shape
        element = torch.finfo(self.dtype).bits // 8
        tokens = s["batch"] * s["seq"] * s["head_dim"]
        return float(element * tokens * (2 * s["heads"] + 2 * s["kv_heads"]))


def create_workload() -> AttentionWorkload:
    return AttentionWorkload()
