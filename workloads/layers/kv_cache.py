"""KV caches for the dense decoder: contiguous (L0/L2), paged with a block table (L6-paged),
optionally stored in FP8 e4m3 (L6-fp8kv).

All caches share one call: ``update(layer, start, k, v) -> (keys, values)`` with k/v
[B, kv_heads, seq, head_dim]. ``start`` is either

- a Python int (L0 and every prefill): the new K/V are written at ``start:start+seq`` and the
  returned keys/values are exactly the valid prefix ``[0, start+seq)``; or
- a long tensor [1] (L2's static decode): written with ``index_copy_`` at tensor positions
  and the whole ``max_seq`` buffer is returned; attention masks slots after the query
  position. Shapes never depend on the position, so the step can be captured in a CUDA graph
  (L4) and compiled once (L5).

Slots past the valid length may hold stale values from an earlier (rolled back) decode; the
position mask in attention always excludes them, so they are never read as keys.

L3's decode path does not call ``update``: it writes the new K/V itself (the fused RoPE + KV
write) and reads the cache's storage in place (the split-KV kernel), through
``decode_view(layer)``: the raw K/V tensors, the block table (paged) and the FP8 scale — no
gathered or decoded copy of the context per layer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

FP8_KV_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0
# The FP8 KV scale is set at each prefill from the prompt's amax with this headroom, so decoded
# keys a few times larger than any prompt key still fit before clamping.
FP8_KV_HEADROOM = 4.0


def positions_of(start: int | torch.Tensor, seq: int, device: torch.device) -> torch.Tensor:
    """Absolute positions [seq] of the new tokens (start may be an int or a tensor [1])."""
    offsets = torch.arange(seq, device=device)
    return offsets + start if isinstance(start, int) else start.reshape(1) + offsets


class DecodeKV(NamedTuple):
    """A layer's cache storage as the decode kernels read it."""

    keys: torch.Tensor  # static [B, kv_heads, max_seq, D] or paged [blocks, block, kv_heads, D]
    values: torch.Tensor
    block_table: torch.Tensor | None  # paged: [B, blocks_per_seq]
    scale: torch.Tensor | None  # FP8: the layer's [1] fp32 scale


class _Fp8Codec:
    """Per-layer, per-tensor scaled e4m3 storage; the scale is a device tensor (no syncs)."""

    def __init__(self, layers: int, device: torch.device) -> None:
        self.scales = [torch.ones(1, device=device, dtype=torch.float32) for _ in range(layers)]

    def calibrate(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        amax = torch.maximum(k.abs().amax(), v.abs().amax()).float()
        self.scales[layer].copy_((amax * FP8_KV_HEADROOM / FP8_MAX).clamp_min(1e-8).reshape(1))

    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        scaled = x.float() / self.scales[layer]
        return scaled.clamp(-FP8_MAX, FP8_MAX).to(FP8_KV_DTYPE)

    def decode(self, layer: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (x.float() * self.scales[layer]).to(dtype)


class KVCache:
    """Preallocated K/V per layer: [batch, kv_heads, max_seq, head_dim]."""

    def __init__(self, layers: int, batch: int, kv_heads: int, max_seq: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype, fp8: bool = False) -> None:
        shape = (batch, kv_heads, max_seq, head_dim)
        self.dtype, self.max_seq = dtype, max_seq
        self.codec = _Fp8Codec(layers, device) if fp8 else None
        store = FP8_KV_DTYPE if fp8 else dtype
        self.keys = [torch.zeros(shape, device=device, dtype=store) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=store) for _ in range(layers)]

    def decode_view(self, layer: int) -> DecodeKV:
        return DecodeKV(self.keys[layer], self.values[layer], None,
                        self.codec.scales[layer] if self.codec is not None else None)

    def _read(self, layer: int, end: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer], self.values[layer]
        if end is not None:
            keys, values = keys[:, :, :end], values[:, :, :end]
        if self.codec is not None:
            return (self.codec.decode(layer, keys, self.dtype),
                    self.codec.decode(layer, values, self.dtype))
        return keys, values

    def update(self, layer: int, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq = k.shape[0], k.shape[2]
        if self.codec is not None:
            if isinstance(start, int) and start == 0:
                self.codec.calibrate(layer, k, v)
            k, v = self.codec.encode(layer, k), self.codec.encode(layer, v)
        if isinstance(start, int):
            end = start + seq
            self.keys[layer][:batch, :, start:end] = k
            self.values[layer][:batch, :, start:end] = v
            keys, values = self._read(layer, end)
            return keys[:batch], values[:batch]
        positions = positions_of(start, seq, k.device)
        if self.codec is not None:  # index_copy_ has no fp8 kernel on CPU: copy the bytes
            self.keys[layer][:batch].view(torch.uint8).index_copy_(2, positions,
                                                                   k.view(torch.uint8))
            self.values[layer][:batch].view(torch.uint8).index_copy_(2, positions,
                                                                     v.view(torch.uint8))
        else:
            self.keys[layer][:batch].index_copy_(2, positions, k)
            self.values[layer][:batch].index_copy_(2, positions, v)
        keys, values = self._read(layer, None)
        return keys[:batch], values[:batch]


class PagedKVCache:
    """K/V in a pool of fixed-size blocks [num_blocks, block, kv_heads, head_dim] per layer,
    addressed through a block table [batch, blocks_per_seq] (vLLM's layout). Blocks are handed
    out from a shuffled free list, so a sequence's blocks are not contiguous in the pool: the
    indirection is exercised, not just declared. ``update`` gathers the sequence's blocks
    (one copy of the context per layer); L3's decode kernel reads the blocks in place."""

    def __init__(self, layers: int, batch: int, kv_heads: int, max_seq: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype, block_size: int = 16,
                 fp8: bool = False, seed: int = 0) -> None:
        self.dtype, self.max_seq, self.block_size = dtype, max_seq, block_size
        self.blocks_per_seq = -(-max_seq // block_size)
        num_blocks = batch * self.blocks_per_seq
        order = torch.randperm(num_blocks, generator=torch.Generator().manual_seed(seed))
        self.block_table = order.view(batch, self.blocks_per_seq).to(device)
        self.codec = _Fp8Codec(layers, device) if fp8 else None
        store = FP8_KV_DTYPE if fp8 else dtype
        shape = (num_blocks, block_size, kv_heads, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=store) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=store) for _ in range(layers)]

    def decode_view(self, layer: int) -> DecodeKV:
        return DecodeKV(self.keys[layer], self.values[layer], self.block_table,
                        self.codec.scales[layer] if self.codec is not None else None)

    def _gather(self, pool: torch.Tensor, layer: int, batch: int, blocks: int) -> torch.Tensor:
        table = self.block_table[:batch, :blocks]
        gathered = pool[table]  # [B, blocks, block, kv_heads, D]
        flat = gathered.reshape(batch, blocks * self.block_size, *pool.shape[2:])
        out = flat.transpose(1, 2)  # [B, kv_heads, T, D]
        return self.codec.decode(layer, out, self.dtype) if self.codec is not None else out

    def update(self, layer: int, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq = k.shape[0], k.shape[2]
        if self.codec is not None:
            if isinstance(start, int) and start == 0:
                self.codec.calibrate(layer, k, v)
            k, v = self.codec.encode(layer, k), self.codec.encode(layer, v)
        positions = positions_of(start, seq, k.device)
        block_ids = self.block_table[:batch, positions // self.block_size]  # [B, seq]
        offsets = (positions % self.block_size).expand(batch, seq)
        if self.codec is not None:  # no fp8 index_put_ on CPU: write the bytes
            self.keys[layer].view(torch.uint8).index_put_(
                (block_ids, offsets), k.transpose(1, 2).contiguous().view(torch.uint8))
            self.values[layer].view(torch.uint8).index_put_(
                (block_ids, offsets), v.transpose(1, 2).contiguous().view(torch.uint8))
        else:
            self.keys[layer].index_put_((block_ids, offsets), k.transpose(1, 2))
            self.values[layer].index_put_((block_ids, offsets), v.transpose(1, 2))
        if isinstance(start, int):
            end = start + seq
            blocks = -(-end // self.block_size)
            keys = self._gather(self.keys[layer], layer, batch, blocks)[:, :, :end]
            values = self._gather(self.values[layer], layer, batch, blocks)[:, :, :end]
            return keys, values
        keys = self._gather(self.keys[layer], layer, batch, self.blocks_per_seq)
        values = self._gather(self.values[layer], layer, batch, self.blocks_per_seq)
        return keys[:, :, :self.max_seq], values[:, :, :self.max_seq]
