"""Router health of a mixture-of-experts model: is the load spread evenly over the experts?

Torch-free: the MoE blocks hand over plain per-layer tallies (``RouterLayerTally``) and this
module turns them into the figures the DeepSeek-R1 seed asks for, so the maths is testable on
hand-computed routings and the CLI/report can import it without torch.

Per MoE layer, with E experts, top-k routing, T tokens and c_i = token-slots sent to expert i
(sum c_i = T*k):

  balance loss   E * sum_i f_i * P_i, f_i = c_i / (T*k), P_i = mean router probability of
                 expert i (softmax over all experts; for sigmoid gating the scores normalized
                 to sum 1 per token). 1.0 when both are uniform, up to E when one expert gets
                 everything (Switch Transformer / DeepSeek expert-level balance loss, without
                 its coefficient). ``aux_loss`` = coefficient * the sum over layers: what a
                 training step would add to its loss.
  Gini           of the loads c_i: sum_ij |c_i - c_j| / (2 E^2 mean(c)); 0 = perfectly even,
                 (E-1)/E = all on one expert.
  router entropy mean over tokens of -sum_i p_i ln p_i (nats), also as a share of ln E
                 (1.0 = the router is maximally undecided).
  load CV        std(c) / mean(c) (population std). The seed's "load variance < 10% of mean"
                 compares a spread in tokens with a mean in tokens, so it is read as the
                 standard deviation (not the variance, whose unit is tokens^2) being under 10%
                 of the mean.

Targets (seed 000, "DeepSeek-R1 (64 experts)"): Gini < 0.2 and load CV < 0.1. A preset meets
them when every MoE layer does (the worst layer is what a GPU waits for). Loads are counted
over every token the parity reference routed: the prefill of the prompt plus each decode step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GINI_TARGET = 0.2
LOAD_CV_TARGET = 0.1


@dataclass
class RouterLayerTally:
    """One MoE layer's routing over some tokens."""

    counts: list[float]  # token-slots per expert, length E
    prob_sums: list[float]  # sum over tokens of each expert's router probability
    entropy_sum: float  # sum over tokens of the router entropy (nats)
    tokens: int

    def merge(self, other: RouterLayerTally) -> RouterLayerTally:
        return RouterLayerTally([a + b for a, b in zip(self.counts, other.counts, strict=True)],
                                [a + b for a, b in zip(self.prob_sums, other.prob_sums,
                                                       strict=True)],
                                self.entropy_sum + other.entropy_sum, self.tokens + other.tokens)


def gini(loads: Sequence[float]) -> float | None:
    """Gini coefficient of non-negative loads; None when there is no load at all."""
    values = sorted(float(v) for v in loads)
    n, total = len(values), sum(values)
    if n == 0 or total <= 0:
        return None
    # Sorted form of sum_ij |x_i - x_j| / (2 n^2 mean): (2 sum_i i x_(i)) / (n total) - (n+1)/n.
    weighted = sum((index + 1) * value for index, value in enumerate(values))
    return 2.0 * weighted / (n * total) - (n + 1) / n


def entropy(probs: Sequence[float]) -> float:
    """Shannon entropy in nats of a probability vector (zeros contribute nothing)."""
    return -sum(p * math.log(p) for p in probs if p > 0)


def load_cv(loads: Sequence[float]) -> float | None:
    """Population standard deviation of the loads over their mean; None if the mean is 0."""
    n = len(loads)
    mean = sum(loads) / n if n else 0.0
    if mean <= 0:
        return None
    variance = sum((v - mean) ** 2 for v in loads) / n
    return math.sqrt(variance) / mean


def balance_loss(counts: Sequence[float], mean_probs: Sequence[float]) -> float | None:
    """E * sum_i f_i P_i with f_i the share of token-slots and P_i the mean probability."""
    total = sum(counts)
    if total <= 0:
        return None
    return len(counts) * sum(c / total * p for c, p in zip(counts, mean_probs, strict=True))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(tallies: Sequence[RouterLayerTally], top_k: int, gating: str,
              aux_loss_coef: float) -> dict[str, Any]:
    """The ``extra.router`` block of result.json from per-layer tallies."""
    if not tallies or not tallies[0].tokens:
        return {"available": False, "reason": "no tokens were routed"}
    experts = len(tallies[0].counts)
    per_layer: list[dict[str, Any]] = []
    for tally in tallies:
        mean_probs = [s / tally.tokens for s in tally.prob_sums]
        per_layer.append({
            "balance_loss": balance_loss(tally.counts, mean_probs),
            "gini": gini(tally.counts),
            "router_entropy": tally.entropy_sum / tally.tokens,
            "load_cv": load_cv(tally.counts),
            "min": int(min(tally.counts)), "max": int(max(tally.counts)),
        })

    def column(key: str) -> list[float]:
        return [row[key] for row in per_layer if row[key] is not None]

    ginis, cvs, losses = column("gini"), column("load_cv"), column("balance_loss")
    entropy_mean = _mean(column("router_entropy"))
    worst_gini = max(ginis) if ginis else None
    worst_cv = max(cvs) if cvs else None
    gini_met = worst_gini is not None and worst_gini < GINI_TARGET
    cv_met = worst_cv is not None and worst_cv < LOAD_CV_TARGET
    return {
        "available": True, "experts": experts, "top_k": top_k, "gating": gating,
        "moe_layers": len(tallies), "tokens_routed": tallies[0].tokens,
        "balance_loss": _mean(losses), "aux_loss_coef": aux_loss_coef,
        "aux_loss": aux_loss_coef * sum(losses) if losses else None,
        "gini": _mean(ginis), "gini_max": worst_gini,
        "router_entropy": entropy_mean,
        "router_entropy_norm": entropy_mean / math.log(experts)
        if entropy_mean is not None and experts > 1 else None,
        "load_cv": _mean(cvs), "load_cv_max": worst_cv,
        "tokens_per_expert_min": min(row["min"] for row in per_layer),
        "tokens_per_expert_max": max(row["max"] for row in per_layer),
        "tokens_per_expert_mean": tallies[0].tokens * top_k / experts,
        "targets": {"gini_lt": GINI_TARGET, "load_cv_lt": LOAD_CV_TARGET,
                    "scope": "every MoE layer (worst layer)"},
        "met": {"gini": gini_met, "load_cv": cv_met},
        "targets_met": gini_met and cv_met,
        "per_layer": per_layer,
    }


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_lines(router: dict[str, Any]) -> list[str]:
    """Plain-text lines for the CLI run summary (no rich, no torch)."""
    if not router or not router.get("available"):
        return [f"router health: n/a ({(router or {}).get('reason', 'not recorded')})"]
    met = router.get("met") or {}

    def verdict(ok: Any) -> str:
        return "met" if ok else "NOT met"

    return [
        f"router health ({router['experts']} experts, top-{router['top_k']}, "
        f"{router['gating']} gating, {router['tokens_routed']} tokens x "
        f"{router['moe_layers']} MoE layers):",
        f"  balance loss {_num(router.get('balance_loss'))} (1.0 = uniform), aux loss "
        f"{_num(router.get('aux_loss'))} (coef {_num(router.get('aux_loss_coef'))})",
        f"  router entropy {_num(router.get('router_entropy'))} nats "
        f"({_num(router.get('router_entropy_norm'))} of ln E)",
        f"  tokens per expert min {_num(router.get('tokens_per_expert_min'), 6)} / max "
        f"{_num(router.get('tokens_per_expert_max'), 6)} (mean "
        f"{_num(router.get('tokens_per_expert_mean'), 4)})",
        f"  Gini {_num(router.get('gini'))} (worst layer {_num(router.get('gini_max'))}; "
        f"target < {GINI_TARGET}): {verdict(met.get('gini'))}",
        f"  load std/mean {_num(router.get('load_cv'))} (worst layer "
        f"{_num(router.get('load_cv_max'))}; target < {LOAD_CV_TARGET:.0%}): "
        f"{verdict(met.get('load_cv'))}",
        f"  targets (Gini, load spread): {'met' if router.get('targets_met') else 'NOT met'}",
    ]
