"""Tensor parallelism for the dense decoder (Megatron-style, inference only).

Per decoder block, with world size W:
  attention   q/k/v projections column-parallel: each rank keeps heads/W query heads and
              kv_heads/W KV heads (their rows of the weights) and its slice of the KV cache;
              attention runs on the local heads; o_proj is row-parallel (the matching input
              columns) and its partial outputs are summed with one all-reduce.
  MLP         gate/up column-parallel (mlp/W rows each), down_proj row-parallel + all-reduce.
The embedding, the norms and the LM head stay replicated (every rank computes the logits), so
two all-reduces per block are the whole communication. The later layers compose: L2 fuses the
local q/k/v and gate/up, L5-fp8 / L5-gemv swap the local ``nn.Linear`` inside the row-parallel
wrapper, L6 cache layers rebuild the cache with the local KV heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from workloads.distributed import DistContext, all_reduce_sum
from workloads.errors import WorkbenchError

if TYPE_CHECKING:
    from workloads.layers.dense_model import DecoderBlock


class RowParallelLinear(nn.Module):
    """y = all_reduce(x_local @ W_local^T): the input features are split across ranks."""

    def __init__(self, local: nn.Module) -> None:
        super().__init__()
        self.local = local

    @property
    def weight(self) -> torch.Tensor:
        return cast(torch.Tensor, self.local.weight)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``residual`` (fused norms, L5-gemv / L5-fp8) is added once, after the sum: inside
        the local GEMV every rank would add it."""
        out = all_reduce_sum(self.local(x))
        return out if residual is None else out + residual


def _linear_of(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    return layer


def _rows(linear: nn.Linear, start: int, stop: int) -> nn.Linear:
    return _linear_of(linear.weight.data[start:stop])


def _cols(linear: nn.Linear, start: int, stop: int) -> RowParallelLinear:
    return RowParallelLinear(_linear_of(linear.weight.data[:, start:stop]))


def check_divisible(shape: dict[str, Any], world: int) -> None:
    for key in ("heads", "kv_heads", "mlp"):
        if shape[key] % world:
            raise WorkbenchError(f"tensor parallel over {world} ranks needs {key} "
                                 f"({shape[key]}) divisible by {world}",
                                 "choose --nproc-per-node that divides heads, kv_heads and mlp")


def shard_block(block: DecoderBlock, rank: int, world: int) -> None:
    attn, mlp = block.attn, block.mlp
    if attn.qkv_proj is not None or mlp.gate_up_proj is not None:
        raise WorkbenchError("tensor parallel must shard the model before L2 fuses it")
    hd = attn.head_dim
    q_per, kv_per = attn.heads // world, attn.kv_heads // world
    q0, kv0 = rank * q_per * hd, rank * kv_per * hd
    attn.q_proj = _rows(attn.q_proj, q0, q0 + q_per * hd)
    attn.k_proj = _rows(attn.k_proj, kv0, kv0 + kv_per * hd)
    attn.v_proj = _rows(attn.v_proj, kv0, kv0 + kv_per * hd)
    attn.o_proj = _cols(attn.o_proj, q0, q0 + q_per * hd)
    attn.heads, attn.kv_heads = q_per, kv_per
    inter = mlp.mlp // world
    m0 = rank * inter
    mlp.gate_proj = _rows(mlp.gate_proj, m0, m0 + inter)
    mlp.up_proj = _rows(mlp.up_proj, m0, m0 + inter)
    mlp.down_proj = _cols(mlp.down_proj, m0, m0 + inter)
    mlp.mlp = inter


def shard_dense(workload: Any, ctx: DistContext) -> str:
    """Shard a built DenseWorkload in place across ``ctx.world_size`` ranks."""
    world, rank = ctx.world_size, ctx.rank
    shape = workload.shape
    check_divisible(shape, world)
    for block in workload.model.blocks:
        shard_block(block, rank, world)
    full_cache = workload._new_cache

    def local_cache(layers: int) -> Any:
        # The workload's shape stays global (FLOP and byte estimates are for the whole model);
        # only the cache is built with this rank's KV heads.
        saved = workload.shape
        workload.shape = {**saved, "kv_heads": saved["kv_heads"] // world}
        try:
            return full_cache(layers)
        finally:
            workload.shape = saved

    workload._new_cache = local_cache
    workload.model.cache = local_cache(shape["layers"])
    if workload.device.type == "cuda":
        torch.cuda.empty_cache()  # the full weights each rank built are garbage now
    return (f"tensor parallel x{world}: {shape['heads'] // world} query / "
            f"{shape['kv_heads'] // world} KV heads and mlp {shape['mlp'] // world} per rank, "
            "2 all-reduces per block")

