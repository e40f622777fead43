"""Paged-attention decode vs a contiguous KV cache (one decode step, ragged context lengths).

Each of ``batch`` sequences has its own context length (drawn from the seed between half of
``context`` and ``context``). Two layouts of the same keys and values:

  contiguous  the baseline: one [batch, kv_heads, max_len, head_dim] tensor padded to the
              longest sequence; padded positions are masked out.
  paged       a pool of fixed-size blocks [num_blocks, kv_heads, block_size, head_dim] with a
              block table per sequence (vLLM style). Physical blocks are shuffled, so a
              sequence's blocks are not adjacent in memory; decode gathers them through the
              block table and attends with the same length mask.

The attention core (SDPA with a boolean length mask, grouped-query) is the same function for
both, so parity is exact up to summation order. ``extra`` reports the KV bytes each layout
holds: the pool only allocates the blocks sequences use (plus ``spare_blocks``), the
contiguous cache pads every sequence to the longest.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from workloads.errors import WorkbenchError
from workloads.micro_base import MicroWorkload, check_params, dtype_of, positive_int

KNOWN = ("batch", "heads", "kv_heads", "head_dim", "context", "block_size", "spare_blocks",
         "dtype", "variant")
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor
                     ) -> torch.Tensor:
    """q [B, H, 1, D]; k/v [B, KVH, L, D]; positions >= lengths[b] are masked."""
    valid = torch.arange(k.shape[2], device=k.device)[None, :] < lengths[:, None]  # [B, L]
    gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :],
                                          enable_gqa=gqa)


def gather_blocks(pool: torch.Tensor, block_table: torch.Tensor) -> torch.Tensor:
    """pool [N, KVH, bs, D], table [B, max_blocks] -> [B, KVH, max_blocks * bs, D]."""
    blocks = pool[block_table]  # [B, max_blocks, KVH, bs, D]
    batch, nblocks, kv_heads, block_size, dim = blocks.shape
    return blocks.permute(0, 2, 1, 3, 4).reshape(batch, kv_heads, nblocks * block_size, dim)


class PagedDecodeWorkload(MicroWorkload):
    name = "paged"
    baseline = "contiguous"
    default_variant = "paged"
    variants = {"contiguous": (), "paged": ()}

    def setup(self, params: dict[str, Any], seed: int) -> None:
        check_params(self.name, params, KNOWN)
        s = {key: positive_int(self.name, params, key)
             for key in ("batch", "heads", "kv_heads", "head_dim", "context", "block_size")}
        s["spare_blocks"] = int(params.get("spare_blocks", 0))
        if s["heads"] % s["kv_heads"]:
            raise WorkbenchError(f"heads ({s['heads']}) must be a multiple of kv_heads "
                                 f"({s['kv_heads']})")
        self.shape = s
        self.dtype = dtype_of(self.name, params.get("dtype", "float32"))
        self.compute_precision = PRECISION_OF_DTYPE[self.dtype]
        generator = torch.Generator().manual_seed(seed + 1)
        low = max(1, s["context"] // 2)
        self.lengths_list = torch.randint(low, s["context"] + 1, (s["batch"],),
                                          generator=generator).tolist()
        self.lengths = torch.tensor(self.lengths_list, device=self.device)
        self.max_len = max(self.lengths_list)
        element = torch.finfo(self.dtype).bits // 8
        per_token = 2 * s["kv_heads"] * s["head_dim"] * element
        used_blocks = sum(-(-n // s["block_size"]) for n in self.lengths_list)
        self.facts.update(
            shape=dict(s), context_lengths=self.lengths_list,
            kv_bytes_contiguous=per_token * s["batch"] * self.max_len,
            kv_bytes_paged=per_token * s["block_size"] * (used_blocks + s["spare_blocks"]),
            kv_bytes_useful=per_token * sum(self.lengths_list))

    def make_inputs(self, seed: int) -> dict[str, torch.Tensor]:
        s = self.shape
        bs, batch = s["block_size"], s["batch"]
        generator = torch.Generator().manual_seed(seed)
        q = torch.randn(batch, s["heads"], 1, s["head_dim"], generator=generator)
        k = torch.randn(batch, s["kv_heads"], self.max_len, s["head_dim"], generator=generator)
        v = torch.randn(batch, s["kv_heads"], self.max_len, s["head_dim"], generator=generator)
        # Build the pool from the same K/V: sequence b's logical block j lives at a shuffled
        # physical block. Unused table entries point at block 0 (masked by the lengths).
        max_blocks = -(-self.max_len // bs)
        counts = [-(-n // bs) for n in self.lengths_list]
        total = sum(counts) + s["spare_blocks"]
        physical = torch.randperm(total, generator=generator).tolist()
        table = torch.zeros(batch, max_blocks, dtype=torch.long)
        pool_k = torch.zeros(total, s["kv_heads"], bs, s["head_dim"])
        pool_v = torch.zeros_like(pool_k)
        cursor = 0
        for b, count in enumerate(counts):
            for j in range(count):
                block = physical[cursor]
                cursor += 1
                table[b, j] = block
                stop = min(self.max_len, (j + 1) * bs) - j * bs
                pool_k[block, :, :stop] = k[b, :, j * bs:j * bs + stop]
                pool_v[block, :, :stop] = v[b, :, j * bs:j * bs + stop]
        # The contiguous cache holds only each sequence's valid tokens (zeros beyond).
        pad = torch.arange(self.max_len)[None, :] >= torch.tensor(self.lengths_list)[:, None]
        k[pad[:, None, :, None].expand_as(k)] = 0.0
        v[pad[:, None, :, None].expand_as(v)] = 0.0
        to_device = {"q": q, "k": k, "v": v, "pool_k": pool_k, "pool_v": pool_v}
        inputs = {name: t.to(self.device, self.dtype) for name, t in to_device.items()}
        inputs["table"] = table.to(self.device)
        return inputs

    def run_variant(self, variant: str, inputs: Any) -> torch.Tensor:
        if variant == "contiguous":
            return decode_attention(inputs["q"], inputs["k"], inputs["v"], self.lengths)
        k = gather_blocks(inputs["pool_k"], inputs["table"])
        v = gather_blocks(inputs["pool_v"], inputs["table"])
        return decode_attention(inputs["q"], k, v, self.lengths)

    def tokens_per_step(self) -> int:
        return self.shape["batch"]

    def flops_per_step(self) -> float | None:
        s = self.shape
        return 4.0 * s["heads"] * s["head_dim"] * sum(self.lengths_list)

    def bytes_per_step(self) -> float | None:
        """K and V of every valid token read once (the useful traffic)."""
        return float(self.facts["kv_bytes_useful"])


def create_workload() -> PagedDecodeWorkload:
    return PagedDecodeWorkload()
