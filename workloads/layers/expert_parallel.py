"""Expert parallelism for the MoE decoders (moe, gptoss) with all-to-all token dispatch.

With world size W, rank r owns experts [r*E/W, (r+1)*E/W). Attention, norms, embedding and
the LM head stay replicated (every rank holds the whole batch and its KV cache), so each MoE
block sees the same hidden states on every rank. Per MoE block:

  route      the router runs on all T tokens on every rank (cheap: [T, E]); router health and
             the parity route replay therefore see every token, as in a 1-rank run.
  split      rank r takes its contiguous chunk of ceil(T/W) tokens (the last chunk padded).
  dispatch   the chunk's T_r*k (token, expert) slots are sorted by the owning rank; the
             per-rank counts are exchanged (all-to-all of W integers, one host sync for the
             split sizes), then the token rows and their local expert ids go out with
             all-to-all (uneven splits).
  experts    each rank runs its local experts on what it received, with the block's current
             implementation (L0 loop or L6 sorted / grouped GEMM; L5-moe-fp8 quantizes the
             local weights only).
  combine    the outputs go back with the reverse all-to-all, are weighted by the gates and
             summed over k; the shared expert runs on the chunk; an all-gather restores the
             full [T, H] on every rank.

The host sync on the counts makes an EP step not CUDA-graph capturable, which the MoE layers
do not attempt anyway.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workloads.distributed import (
    DistContext,
    all_gather_rows,
    all_to_all_rows,
    exchange_counts,
)
from workloads.errors import WorkbenchError
from workloads.layers.moe_block import MoEFeedForward, moe_blocks
from workloads.layers.moe_experts import ExpertWeights, experts_loop, experts_sorted


def local_weights(weights: ExpertWeights, start: int, stop: int) -> ExpertWeights:
    def part(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor[start:stop].contiguous()

    return ExpertWeights(w13=part(weights.w13), w2=part(weights.w2), b13=part(weights.b13),
                         b2=part(weights.b2), activation=weights.activation,
                         w13_q=part(weights.w13_q), w13_s=part(weights.w13_s),
                         w2_q=part(weights.w2_q), w2_s=part(weights.w2_s))


class ExpertParallelFeedForward(nn.Module):
    """Wraps a MoEFeedForward whose ``weights`` now hold only this rank's experts."""

    def __init__(self, block: MoEFeedForward, ctx: DistContext) -> None:
        super().__init__()
        self.block = block
        self.rank, self.world = ctx.rank, ctx.world_size
        self.per_rank = block.experts // ctx.world_size
        self.stats = {"calls": 0, "sent_rows": 0, "received_rows": 0}

    def _run_local_experts(self, rows: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
        """rows [n, H] each for one local expert id [n] -> expert outputs [n, H] (unweighted)."""
        if rows.shape[0] == 0:
            return rows.new_zeros(rows.shape)
        ones = torch.ones(rows.shape[0], 1, dtype=rows.dtype, device=rows.device)
        block = self.block
        if block.dispatch == "sorted":
            return experts_sorted(rows, expert[:, None], ones, block.weights, block.backend)
        return experts_loop(rows, expert[:, None], ones, block.weights)

    def _dispatch_combine(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor
                          ) -> torch.Tensor:
        tokens, top_k = idx.shape
        flat_expert = idx.reshape(-1)
        owner = torch.div(flat_expert, self.per_rank, rounding_mode="floor")
        order = torch.argsort(owner, stable=True)
        send = torch.zeros(self.world, dtype=torch.int64, device=x.device)
        send.index_add_(0, owner, torch.ones_like(owner))
        recv = exchange_counts(send)
        send_counts, recv_counts = send.tolist(), recv.tolist()  # split sizes live on the host
        token_of = torch.div(order, top_k, rounding_mode="floor")
        out_rows = all_to_all_rows(x[token_of], send_counts, recv_counts)
        out_expert = all_to_all_rows(flat_expert[order] - owner[order] * self.per_rank,
                                     send_counts, recv_counts)
        y = self._run_local_experts(out_rows, out_expert)
        back = all_to_all_rows(y, recv_counts, send_counts)
        self.stats["calls"] += 1
        self.stats["sent_rows"] += int(sum(send_counts))
        self.stats["received_rows"] += int(sum(recv_counts))
        slots = torch.empty_like(back)
        slots[order] = back
        slots = slots * weights.reshape(-1, 1)
        return slots.view(tokens, top_k, -1).sum(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block, shape = self.block, x.shape
        flat = x.reshape(-1, shape[-1])
        total = flat.shape[0]
        idx, gate, probs = block.route(flat)
        if block.collect:
            block._record(idx, probs)
        gate = gate.to(x.dtype)
        chunk = -(-total // self.world)
        start, stop = self.rank * chunk, min(total, (self.rank + 1) * chunk)
        start = min(start, stop)
        local = flat[start:stop]
        out = self._dispatch_combine(local, idx[start:stop], gate[start:stop])
        if block.shared_w13 is not None:
            assert block.shared_w2 is not None  # both shared weights are set together
            up_gate, up = F.linear(local, block.shared_w13).chunk(2, dim=-1)
            out = out + F.linear(F.silu(up_gate) * up, block.shared_w2)
        if out.shape[0] < chunk:  # the last ranks' chunks are short (or empty): pad to gather
            out = torch.cat([out, out.new_zeros(chunk - out.shape[0], out.shape[1])])
        return all_gather_rows(out, self.world)[:total].view(shape)


def shard_moe(workload: Any, ctx: DistContext) -> str:
    """Keep this rank's experts in every MoE block and route tokens to them with all-to-all."""
    model = workload.model
    blocks = moe_blocks(model)
    if not blocks or not hasattr(model, "moes"):
        raise WorkbenchError(f"workload {workload.name!r} has no MoE blocks to shard")
    experts, world = blocks[0].experts, ctx.world_size
    if experts % world:
        raise WorkbenchError(f"expert parallel over {world} ranks needs the expert count "
                             f"({experts}) divisible by {world}",
                             "choose --nproc-per-node that divides the experts")
    per_rank = experts // world
    start = ctx.rank * per_rank
    for index, block in enumerate(list(model.moes)):
        block.weights = local_weights(block.weights, start, start + per_rank)
        model.moes[index] = ExpertParallelFeedForward(block, ctx)
    if workload.device.type == "cuda":
        torch.cuda.empty_cache()
    return (f"expert parallel x{world}: experts {start}-{start + per_rank - 1} of {experts} on "
            f"rank {ctx.rank}, all-to-all dispatch; attention replicated")


def dispatch_stats(model: nn.Module | None) -> dict[str, int] | None:
    """Rows this rank sent and received through all-to-all, summed over MoE blocks."""
    if model is None:
        return None
    wrappers = [m for m in model.modules() if isinstance(m, ExpertParallelFeedForward)]
    if not wrappers:
        return None
    return {key: sum(w.stats[key] for w in wrappers) for key in ("calls", "sent_rows",
                                                                  "received_rows")}
