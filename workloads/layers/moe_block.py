"""A MoE feed-forward block: router, routed experts (``moe_experts``), optional shared expert.

Gating (``gating``):
  softmax       probabilities over all experts, top-k of them (DeepSeek-V2); with
                ``norm_topk`` the k weights are renormalized to sum 1.
  sigmoid       independent sigmoid affinities, top-k, renormalized with ``norm_topk``
                (DeepSeek-V3 / R1).
  softmax_topk  top-k of the logits, softmax over those k (gpt-oss, Mixtral).
Router logits are computed in fp32 so bf16 runs pick the same experts as long as the hidden
states agree. The implementation flags (``dispatch``, ``backend``) are switched by layers; the
weights and the routing are the same for all of them.

While ``collect`` is True the block tallies its routing for ``workloads.router_health`` (a host
sync per call: only the untimed parity reference collects).

Parity replays routing: the reference run records each call's expert choice (``recorded``);
the candidate run is handed them and uses those experts with weights from its own router
scores, counting where its own choice would have differed. Tokens are teacher-forced for the
same reason: in bf16 a near-tie between the k-th and (k+1)-th expert can flip on rounding
alone, and one flipped expert moves a logit by a large fraction of its size without anything
being wrong. The flips are reported beside the parity result.

The replay lives on the device so a CUDA-graphed (L4) or compiled (L5) step replays too: the
workload copies each call's recorded choice into ``replay_idx`` before the call, and the step
picks ``where(replay_on, replay_idx, own choice)`` and marks the tokens whose own choice
differed in ``replay_flips`` (overwritten per call, so graph warm-ups do not count twice).
With ``replay_on`` false (the timed steps) the same graph runs the model's own routing.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workloads.layers.moe_experts import ExpertWeights, experts_loop, experts_sorted
from workloads.layers.moe_gemv import MAX_SLOTS, experts_gemv
from workloads.router_health import RouterLayerTally

GATINGS = ("softmax", "sigmoid", "softmax_topk")
Init = Callable[[tuple[int, ...], float], torch.Tensor]


class MoEFeedForward(nn.Module):
    def __init__(self, hidden: int, experts: int, top_k: int, inter: int, shared_inter: int,
                 gating: str, norm_topk: bool, activation: str, bias: bool, init: Init,
                 residual_std: float) -> None:
        super().__init__()
        self.experts, self.top_k, self.gating, self.norm_topk = experts, top_k, gating, norm_topk
        in_std = 1.0 / math.sqrt(hidden)
        # The router is drawn in the model dtype and kept in fp32, the precision it runs in:
        # the same values, and no weight conversion kernel per layer in every decode step.
        self.router_w = nn.Parameter(init((experts, hidden), in_std).float(),
                                     requires_grad=False)
        self.router_b = nn.Parameter(init((experts,), 0.0).float(), requires_grad=False) \
            if bias else None
        self.weights = ExpertWeights(
            w13=init((experts, 2 * inter, hidden), in_std),
            w2=init((experts, hidden, inter), residual_std / math.sqrt(inter)),
            b13=init((experts, 2 * inter), 0.02) if bias else None,
            b2=init((experts, hidden), 0.02) if bias else None, activation=activation)
        self.compute_dtype = self.weights.w13.dtype  # type: ignore[union-attr]  # the model's
        self.shared_w13 = self.shared_w2 = None
        if shared_inter:
            self.shared_w13 = nn.Parameter(init((2 * shared_inter, hidden), in_std),
                                           requires_grad=False)
            self.shared_w2 = nn.Parameter(
                init((hidden, shared_inter), residual_std / math.sqrt(shared_inter)),
                requires_grad=False)
        self.dispatch = "loop"  # loop (L0) | sorted (L6)
        self.backend = "bmm"  # grouped_mm | bmm, for the sorted dispatch
        # L6 on CUDA: decode (<= moe_gemv.MAX_SLOTS token-expert slots) through the fused
        # Triton expert GEMV instead of the sort + grouped GEMMs.
        self.decode_gemv = False
        self.collect = False
        self.tally: RouterLayerTally | None = None
        self.recorded: list[torch.Tensor] | None = None  # expert choices of the reference
        # Device-side route replay (see the module docstring); None until a parity run needs it.
        self.replay_idx: torch.Tensor | None = None  # [rows, k] long
        self.replay_on: torch.Tensor | None = None  # bool [1]
        self.replay_flips: torch.Tensor | None = None  # bool [rows]: this call's flipped tokens

    def route(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """flat [T, H] -> (topk_idx [T, k], topk_w [T, k] fp32, probs [T, E] fp32)."""
        logits = F.linear(flat.float(), self.router_w.float(),
                          None if self.router_b is None else self.router_b.float())
        if self.gating == "softmax_topk":
            idx = self._choose(logits)
            return idx, logits.gather(-1, idx).softmax(dim=-1), logits.softmax(dim=-1)
        if self.gating == "sigmoid":
            scores = torch.sigmoid(logits)
            probs = scores / scores.sum(dim=-1, keepdim=True)
        else:
            scores = probs = logits.softmax(dim=-1)
        idx = self._choose(scores)
        weights = scores.gather(-1, idx)
        if self.norm_topk:
            weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-20)
        return idx, weights, probs

    def _choose(self, scores: torch.Tensor) -> torch.Tensor:
        idx = scores.topk(self.top_k, dim=-1).indices
        if self.recorded is not None:
            self.recorded.append(idx)
        if self.replay_idx is not None:
            assert self.replay_on is not None and self.replay_flips is not None
            forced = self.replay_idx[:idx.shape[0]]
            # k distinct experts each: the same set iff every forced one is among ours
            same = (forced[:, :, None] == idx[:, None, :]).any(-1).all(-1)
            # per token, not summed: a store fuses into the routing kernel, a sum would not
            self.replay_flips[:idx.shape[0]].copy_(~same & self.replay_on)
            idx = torch.where(self.replay_on, forced, idx)
        return idx

    def enable_replay(self, rows: int) -> None:
        """Allocate the replay buffers for calls of up to ``rows`` tokens (once: a captured
        graph or compiled step holds on to these very tensors)."""
        if self.replay_idx is not None and self.replay_idx.shape[0] >= rows:
            return
        device = self.router_w.device
        self.replay_idx = torch.zeros(rows, self.top_k, dtype=torch.long, device=device)
        self.replay_on = torch.zeros(1, dtype=torch.bool, device=device)
        self.replay_flips = torch.zeros(rows, dtype=torch.bool, device=device)

    def _record(self, idx: torch.Tensor, probs: torch.Tensor) -> None:
        counts = torch.zeros(self.experts, dtype=torch.float64, device=idx.device)
        counts.index_add_(0, idx.reshape(-1), torch.ones(idx.numel(), dtype=torch.float64,
                                                         device=idx.device))
        entropy = -(probs * probs.clamp_min(1e-30).log()).sum(dim=-1)
        tally = RouterLayerTally(counts.tolist(), probs.double().sum(0).tolist(),
                                 float(entropy.double().sum()), int(probs.shape[0]))
        self.tally = tally if self.tally is None else self.tally.merge(tally)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        idx, weights, probs = self.route(flat)
        if self.collect:
            self._record(idx, probs)
        weights = weights.to(x.dtype)
        if self.dispatch == "sorted" and self.decode_gemv \
                and flat.shape[0] * self.top_k <= MAX_SLOTS:
            out = experts_gemv(flat, idx, weights, self.weights)
        elif self.dispatch == "sorted":
            out = experts_sorted(flat, idx, weights, self.weights, self.backend)
        else:
            out = experts_loop(flat, idx, weights, self.weights)
        if self.shared_w13 is not None:
            assert self.shared_w2 is not None  # both shared weights are set together
            gate, up = F.linear(flat, self.shared_w13).chunk(2, dim=-1)
            out = out + F.linear(F.silu(gate) * up, self.shared_w2)
        return out.view(shape)


def moe_blocks(model: nn.Module | None) -> list[MoEFeedForward]:
    return [] if model is None else [m for m in model.modules() if isinstance(m, MoEFeedForward)]
