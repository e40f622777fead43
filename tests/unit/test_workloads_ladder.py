"""Ladder layers on the CPU: each transform keeps the L0 math (tiny preset, fp32)."""

from __future__ import annotations

import pytest
import torch

from workloads import catalog, dense
from workloads.layers import LayerOutcome, apply_layers
from workloads.layers.kv_cache import KVCache, PagedKVCache
from workloads.layers.speculative import speculative_decode
from workloads.parity import compare, speculative_check

CPU = torch.device("cpu")


def build(**overrides):
    workload = dense.DenseWorkload()
    params = catalog.get_preset("dense", "tiny")
    params.update(overrides)
    workload.build(CPU, torch.float32, params, seed=0)
    return workload


def stack_parity(layers, **overrides):
    """L0 reference, then ``layers`` applied, decode again fed the reference tokens."""
    workload = build(unmet_layers="skip", **overrides)
    inputs = workload.make_inputs(0)
    outcomes: list[LayerOutcome] = []
    apply_layers(["L0"], workload, CPU, outcomes)
    reference = workload.parity_outputs(inputs)
    apply_layers(layers, workload, CPU, outcomes)
    candidate = workload.parity_outputs(inputs, reference.tokens)
    return workload, reference, candidate, outcomes


@torch.inference_mode()
def test_static_cache_decode_equals_l0_logits():
    workload, reference, candidate, outcomes = stack_parity(["L2"])
    assert workload.runtime.static and workload.model.blocks[0].attn.qkv_proj is not None
    torch.testing.assert_close(candidate.logits, reference.logits, rtol=1e-5, atol=1e-5)
    assert outcomes[-1].applied and "static KV cache" in outcomes[-1].reason


@torch.inference_mode()
@pytest.mark.parametrize("layers", [["L6-paged"], ["L2", "L6-paged"], ["L2", "L3", "L6-paged"]])
def test_paged_kv_equals_contiguous(layers):
    workload, reference, candidate, _ = stack_parity(layers)
    assert isinstance(workload.model.cache, PagedKVCache)
    torch.testing.assert_close(candidate.logits, reference.logits, rtol=1e-5, atol=1e-5)


def test_paged_cache_reads_back_what_a_contiguous_cache_holds():
    args = (1, 2, 2, 40, 8, CPU, torch.float32)
    flat, paged = KVCache(*args), PagedKVCache(*args, block_size=16, seed=3)
    assert not torch.equal(paged.block_table[0], paged.block_table[0].sort().values)
    k, v = torch.randn(2, 2, 21, 8), torch.randn(2, 2, 21, 8)
    for cache in (flat, paged):
        cache.update(0, 0, k, v)
    pos = torch.tensor([21])
    k1, v1 = torch.randn(2, 2, 1, 8), torch.randn(2, 2, 1, 8)
    (fk, fv), (pk, pv) = flat.update(0, pos, k1, v1), paged.update(0, pos, k1, v1)
    torch.testing.assert_close(pk[:, :, :22], fk[:, :, :22], rtol=0, atol=0)
    torch.testing.assert_close(pv[:, :, :22], fv[:, :, :22], rtol=0, atol=0)


@torch.inference_mode()
def test_sdpa_and_sliding_window_match_eager():
    for overrides in ({}, {"window": 8}):
        _, reference, candidate, outcomes = stack_parity(["L2", "L3"], **overrides)
        torch.testing.assert_close(candidate.logits, reference.logits, rtol=1e-5, atol=1e-5)
    assert "SDPA" in outcomes[-1].reason


@torch.inference_mode()
def test_window_changes_the_model():
    _, full, _, _ = stack_parity([])
    _, windowed, _, _ = stack_parity([], window=8)
    assert not torch.allclose(full.logits[-1], windowed.logits[-1])


@torch.inference_mode()
def test_fp8_kv_cache_within_fp8_tolerance_and_judged_as_fp8():
    workload, reference, candidate, _ = stack_parity(["L2", "L6-fp8kv"])
    report = compare(reference, candidate, workload.compute_precision)
    assert workload.compute_precision == "fp8" and report.ok
    assert 0 < report.max_rel_err < 0.05  # really quantized, and close


@torch.inference_mode()
@pytest.mark.parametrize("layers", [["L6-spec"], ["L2", "L3", "L6-paged", "L6-spec"]])
def test_speculative_decoding_equals_greedy_target_decode(layers):
    workload, reference, _, outcomes = stack_parity(layers, new_tokens=16, spec_k=3)
    assert workload.spec_stats["matches_greedy"] is True
    # And directly: a fresh speculative run from the prefilled state.
    inputs = workload.make_inputs(0)
    workload.prefill(inputs)
    tokens = workload._speculate(15)
    assert torch.equal(tokens, reference.tokens[1:])
    rate = workload.spec_stats["acceptance_rate"]
    assert 0.0 <= rate <= 1.0 and workload.tokens_per_step() == 2 * 15


@torch.inference_mode()
def test_speculative_loop_with_a_perfect_and_a_useless_draft():
    vocab = 11

    def target(tokens, start):  # next token = (token + position) % vocab, as logits
        positions = torch.arange(start, start + tokens.shape[1])
        return torch.nn.functional.one_hot((tokens + positions) % vocab, vocab).float()

    def useless(tokens, start):
        return torch.nn.functional.one_hot(torch.zeros_like(tokens), vocab).float()

    expected, token = [], torch.tensor([[3]])
    for position in range(5, 5 + 9):
        token = (token + position) % vocab
        expected.append(token[:, 0])
    expected = torch.stack(expected)
    good, good_stats = speculative_decode(target, target, torch.tensor([[3]]), 5, 9, 4)
    bad, bad_stats = speculative_decode(target, useless, torch.tensor([[3]]), 5, 9, 4)
    assert torch.equal(good, expected) and torch.equal(bad, expected)
    assert good_stats["acceptance_rate"] == 1.0 and good_stats["tokens_per_round"] == 5.0  # k + 1 per round
    assert bad_stats["acceptance_rate"] < 0.2 and bad_stats["rounds"] == 9


@torch.inference_mode()
def test_gpu_layers_are_recorded_as_needing_cuda_in_skip_mode(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, reference, candidate, outcomes = stack_parity(["L4", "L5", "L5-fp8", "L5-gemv"])
    skipped = {o.name: o.reason for o in outcomes if not o.applied}
    assert set(skipped) == {"L4", "L5", "L5-fp8", "L5-gemv"}
    assert all(reason.startswith("needs") and "CUDA" in reason for reason in skipped.values())
    assert torch.equal(candidate.logits, reference.logits)


def test_plain_run_still_fails_on_an_unmet_requirement(monkeypatch):
    from workloads.errors import WorkbenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    workload = build()
    with pytest.raises(WorkbenchError, match="layer L4 .* needs a CUDA GPU"):
        apply_layers(["L4"], workload, CPU, [])


def test_bad_run_options_are_workbench_errors():
    from workloads.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="unmet_layers"):
        build(unmet_layers="maybe")
    with pytest.raises(WorkbenchError, match="window"):
        build(window=-1)
    workload = build(spec_k=60)
    with pytest.raises(WorkbenchError, match="max_seq"):
        apply_layers(["L6-spec"], workload, CPU, [])


@torch.inference_mode()
def test_speculative_check_tells_a_near_tie_from_a_wrong_token():
    """On a GPU the verify pass (k+1 tokens through other kernels) can flip a bf16 near-tie that
    the one-token decode resolved the other way: that is rounding. Picking a token the model
    clearly ranks lower is a bug. Judged on this model's own logits: a departure to the
    runner-up at the closest step, and one to the least likely token."""
    _, reference, candidate, _ = stack_parity(["L6-spec"], new_tokens=16, spec_k=3)
    greedy, logits = reference.tokens[1:], candidate.logits[1:]
    assert speculative_check(greedy.clone(), greedy, logits, "bf16") == {
        "matches_greedy": True, "verdict": "exact"}
    top2 = logits.topk(2, dim=-1)
    gaps = (top2.values[..., 0] - top2.values[..., 1]) / logits.abs().max()
    step, row = divmod(int(gaps.argmin()), gaps.shape[1])
    runner_up = greedy.clone()
    runner_up[step, row] = top2.indices[step, row, 1]
    runner_up[step + 1:, row] = 0  # after a departure the prefixes differ: not compared
    gap = float(gaps[step, row])
    assert 1e-4 < gap < 5e-2  # a real near-tie at bf16's tolerance, not at fp32's
    tie = speculative_check(runner_up, greedy, logits, "bf16")
    assert tie["verdict"] == "near_tie" and tie["matches_greedy"] is False
    assert tie["first_departure_step"] == step
    assert tie["departure_gap_rel"] == pytest.approx(gap, rel=1e-5)
    assert speculative_check(runner_up, greedy, logits, "fp32")["verdict"] == "diverged"
    wrong = greedy.clone()
    wrong[0, 0] = logits[0, 0].argmin()
    assert speculative_check(wrong, greedy, logits, "bf16")["verdict"] == "diverged"
