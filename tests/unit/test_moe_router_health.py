"""Router health maths on fixed, hand-computed routings (torch-free core + the torch tally)."""

from __future__ import annotations

import math

import pytest
import torch

from workloads import router_health as rh
from workloads.layers.moe_block import MoEFeedForward


def test_gini_hand_computed():
    # sum_ij |x_i - x_j| / (2 n^2 mean)
    assert rh.gini([1, 2, 3, 4]) == pytest.approx(20 / 80)
    assert rh.gini([4, 2, 1, 1]) == pytest.approx(20 / 64)
    assert rh.gini([0, 0, 0, 4]) == pytest.approx(0.75)  # (n-1)/n: all load on one expert
    assert rh.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert rh.gini([0, 0]) is None  # no load at all is unknown, not 0


def test_entropy_cv_and_balance_loss_hand_computed():
    assert rh.entropy([0.5, 0.25, 0.25, 0.0]) == pytest.approx(1.5 * math.log(2))
    assert rh.load_cv([4, 2, 1, 1]) == pytest.approx(math.sqrt(1.5) / 2)
    assert rh.load_cv([0, 0]) is None
    assert rh.balance_loss([4, 2, 1, 1], [0.25] * 4) == pytest.approx(1.0)
    assert rh.balance_loss([4, 2, 1, 1], [0.5, 0.25, 0.125, 0.125]) == pytest.approx(1.375)


def fixed_router_block() -> MoEFeedForward:
    """4 experts, top-2, softmax gating; the router is the identity so logits = inputs."""
    generator = torch.Generator().manual_seed(0)

    def init(size: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(size, generator=generator, dtype=torch.float64) * std

    block = MoEFeedForward(4, 4, 2, 8, 0, "softmax", True, "swiglu", False, init, 1.0)
    block.router_w.data = torch.eye(4, dtype=torch.float64)
    return block


def test_block_tally_on_a_fixed_routing_matches_hand_values():
    block = fixed_router_block()
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1],
                          [0.4, 0.1, 0.3, 0.2], [0.4, 0.1, 0.2, 0.3]], dtype=torch.float64)
    block.collect = True
    block(probs.log())  # softmax(log p) = p: top-2 picks {0,1}, {0,1}, {0,2}, {0,3}
    tally = block.tally
    assert tally is not None and tally.counts == [4.0, 2.0, 1.0, 1.0] and tally.tokens == 4
    summary = rh.summarize([tally], top_k=2, gating="softmax", aux_loss_coef=0.01)
    assert summary["gini"] == pytest.approx(0.3125)
    # every token's distribution is a permutation of (.4, .3, .2, .1)
    want_entropy = -sum(p * math.log(p) for p in (0.4, 0.3, 0.2, 0.1))
    assert summary["router_entropy"] == pytest.approx(want_entropy)
    assert summary["router_entropy_norm"] == pytest.approx(want_entropy / math.log(4))
    assert summary["load_cv"] == pytest.approx(math.sqrt(1.5) / 2)
    # f = (.5, .25, .125, .125), P = mean probs (.4, .2, .225, .175)
    want_loss = 4 * (0.5 * 0.4 + 0.25 * 0.2 + 0.125 * 0.225 + 0.125 * 0.175)
    assert summary["balance_loss"] == pytest.approx(want_loss)
    assert summary["aux_loss"] == pytest.approx(0.01 * want_loss)
    assert (summary["tokens_per_expert_min"], summary["tokens_per_expert_max"]) == (1, 4)
    assert summary["met"] == {"gini": False, "load_cv": False}
    assert summary["targets_met"] is False


def test_targets_met_only_when_every_layer_meets_them():
    even = rh.RouterLayerTally([100.0, 101.0, 99.0, 100.0], [25.0] * 4, 50.0, 200)
    skewed = rh.RouterLayerTally([170.0, 10.0, 110.0, 110.0], [25.0] * 4, 50.0, 200)
    assert rh.summarize([even], 2, "softmax", 0.0)["targets_met"] is True
    both = rh.summarize([even, skewed], 2, "softmax", 0.0)
    assert both["targets_met"] is False and both["met"]["gini"] is False
    assert both["gini_max"] == pytest.approx(rh.gini(skewed.counts))
    lines = "\n".join(rh.summary_lines(both))
    assert "Gini" in lines and "NOT met" in lines and "target < 0.2" in lines
    assert "targets (Gini, load spread): met" in "\n".join(rh.summary_lines(rh.summarize([even], 2, "x", 0.0)))


def test_no_tokens_is_unavailable_not_zero():
    summary = rh.summarize([], 2, "softmax", 0.0)
    assert summary["available"] is False
    assert "n/a" in rh.summary_lines(summary)[0]
