"""Greedy speculative decoding (L6-spec): a small draft proposes ``k`` tokens, the target checks
them in one forward of ``k + 1`` tokens, and the longest agreeing prefix is kept plus the
target's own next token. The output is exactly the target's greedy decode: every kept token
is the target's argmax at its position; the draft only decides how many come per target pass.

Batches stay aligned: a round keeps the shortest agreeing prefix over the batch (rows that
agreed further lose nothing but speed). Rejected K/V entries need no rollback: they sit at
positions the next round overwrites before any query can see them (attention masks by
position).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# forward(tokens [B, S], start) -> logits [B, S, V] for start > 0
Forward = Callable[[torch.Tensor, int], torch.Tensor]


def speculative_decode(target: Forward, draft: Forward, pending: torch.Tensor, start: int,
                       count: int, k: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Decode ``count`` tokens after the prompt whose next token ``pending`` [B, 1] sits at
    position ``start`` (both caches hold the prompt). Returns tokens [count, B] and stats."""
    produced: list[torch.Tensor] = []
    position = start
    proposed = accepted = rounds = 0
    while len(produced) < count:
        fed, proposals = pending, []
        # k + 1 draft steps: the last one only writes d_k's K/V into the draft cache, so a
        # fully accepted round leaves the draft cache complete.
        for offset in range(k + 1):
            fed = draft(fed, position + offset)[:, -1].argmax(-1, keepdim=True)
            proposals.append(fed)
        drafts = torch.cat(proposals[:k], dim=1)  # [B, k]
        verified = target(torch.cat([pending, drafts], dim=1), position).argmax(-1)  # [B, k+1]
        agree = (drafts == verified[:, :k]).int().cumprod(dim=1).sum(dim=1)
        kept = int(agree.min())  # one host sync per round
        produced.extend(verified[:, :kept + 1].unbind(dim=1))
        pending = verified[:, kept:kept + 1]
        position += kept + 1
        proposed, accepted, rounds = proposed + k, accepted + kept, rounds + 1
    tokens = torch.stack(produced[:count])
    stats = {"acceptance_rate": accepted / proposed if proposed else None,
             "tokens_per_round": len(produced) / rounds if rounds else None,
             "rounds": rounds}
    return tokens, stats
