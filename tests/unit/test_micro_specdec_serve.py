"""Speculative decoding equals greedy target decoding exactly; the serving engine's batched
output equals one-request-at-a-time decoding; load-test figures by hand."""

from __future__ import annotations

import pytest
import torch

from workloads import catalog
from workloads.dense import DenseDecoder, resolve_shape
from workloads.micro_specdec import (
    SpecDecodeWorkload,
    greedy_generate,
    speculative_generate,
    truncated_draft,
)
from workloads.parity import compare
from workloads.serve_engine import ServeEngine, ServeRequest
from workloads.serve_metrics import RequestTiming, distribution, find_knee, summarize_load
from workloads.serve_workload import poisson_arrivals

CPU = torch.device("cpu")
SHAPE = resolve_shape({"hidden": 64, "layers": 4, "heads": 4, "kv_heads": 2, "mlp": 128,
                       "vocab": 97, "batch": 1, "prompt_len": 12, "new_tokens": 20,
                       "max_seq": 64, "dtype": "float32", "rope_theta": 10000.0,
                       "norm_eps": 1e-5})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def target() -> DenseDecoder:
    return DenseDecoder(SHAPE, CPU, torch.float32, seed=3).eval()


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_speculative_output_equals_greedy_target_decoding(target: DenseDecoder, k: int) -> None:
    draft = truncated_draft(target, SHAPE, 1, CPU, torch.float32)
    prompt = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(k))
    with torch.inference_mode():
        greedy_tokens, greedy_logits = greedy_generate(target, prompt, 20)
        tokens, logits, stats = speculative_generate(target, draft, prompt, 20, k)
    assert tokens == greedy_tokens
    assert torch.allclose(logits, greedy_logits, atol=1e-4, rtol=0)
    assert stats["accepted"] <= stats["proposed"]
    assert stats["target_forwards"] <= 20  # never more target forwards than greedy


def test_truncated_draft_shares_the_target_weights(target: DenseDecoder) -> None:
    draft = truncated_draft(target, SHAPE, 2, CPU, torch.float32)
    assert len(draft.blocks) == 2 and draft.blocks[1] is target.blocks[1]
    assert draft.lm_head is target.lm_head and draft.embed is target.embed
    assert draft.cache is not target.cache


def test_specdec_workload_acceptance_is_non_trivial_and_tokens_match() -> None:
    workload = SpecDecodeWorkload()
    params = {**catalog.get_preset("specdec", "tiny"), "sweep_repeats": 1, "k_sweep": "1,4"}
    workload.build(CPU, torch.float32, params, seed=0)
    prompt = workload.make_inputs(0)
    with torch.inference_mode():
        reference = workload.parity_outputs(prompt)
        candidate = workload.parity_outputs(prompt, reference.tokens)
        report = compare(reference, candidate, workload.compute_precision)
        workload.prepare(prompt)
    facts = workload.extra()
    assert report.ok and report.top1_agreement == 1.0 and facts["tokens_equal_greedy"]
    assert 0.0 < facts["acceptance_rate"] < 1.0
    assert [row["k"] for row in facts["k_sweep"]] == [1, 4]
    assert all(row["tokens_equal_greedy"] and row["speedup_vs_greedy"] > 0
               for row in facts["k_sweep"])


def test_engine_batched_output_equals_isolated_greedy(target: DenseDecoder) -> None:
    prompts = [torch.randint(0, 97, (n,), generator=torch.Generator().manual_seed(n)).tolist()
               for n in (5, 17, 30, 9)]
    wants = [7, 3, 12, 10]
    # a tight token budget and small chunks force prefill chunks and decodes to interleave
    engine = ServeEngine(target, SHAPE, max_running=3, max_batch_tokens=8, prefill_chunk=6)
    requests = [ServeRequest(i, p, n) for i, (p, n) in enumerate(zip(prompts, wants,
                                                                       strict=True))]
    for request in requests:
        engine.add(request)
    with torch.inference_mode():
        while not engine.idle():
            engine.step()
        for request, prompt, want in zip(requests, prompts, wants, strict=True):
            expected, _ = greedy_generate(target, torch.tensor([prompt]), want)
            assert request.output == expected
    assert engine.iterations > max(wants)  # shared slots and budget: more than one pass
    assert sorted(engine.free_slots) == [0, 1, 2]


def test_engine_teacher_forcing_feeds_the_given_tokens(target: DenseDecoder) -> None:
    """Forced tokens (the parity check's mode) replace the engine's argmax, and the logits it
    records are those of a decode fed the same tokens: position by position comparable."""
    prompt = torch.randint(0, 97, (11,), generator=torch.Generator().manual_seed(1)).tolist()
    forced = [(7 * i + 3) % 97 for i in range(6)]  # not what greedy would pick
    engine = ServeEngine(target, SHAPE, max_running=2, max_batch_tokens=8, prefill_chunk=4,
                         record_logits=True)
    request = ServeRequest(0, prompt, 6, forced=forced)
    engine.add(request)
    with torch.inference_mode():
        while not engine.idle():
            engine.step()
        assert request.output == forced
        logits = target(torch.tensor([prompt]), 0)
        position = len(prompt)
        for index, token in enumerate(forced):
            torch.testing.assert_close(request.logits[index], logits[0].float(),
                                       rtol=1e-4, atol=1e-4)
            logits = target(torch.tensor([[token]]), position)
            position += 1


def test_engine_abort_frees_everything(target: DenseDecoder) -> None:
    engine = ServeEngine(target, SHAPE, max_running=2, max_batch_tokens=4, prefill_chunk=4)
    for index in range(3):
        engine.add(ServeRequest(index, [1, 2, 3, 4, 5, 6], 5))
    with torch.inference_mode():
        engine.step()
    dropped = engine.abort_all()
    assert len(dropped) == 3 and engine.idle() and sorted(engine.free_slots) == [0, 1]


def test_poisson_arrivals_are_seeded_and_bounded() -> None:
    first = poisson_arrivals(10.0, 200, 5, 50, (3, 9), (1, 4))
    assert first == poisson_arrivals(10.0, 200, 5, 50, (3, 9), (1, 4))
    times = [t for t, _, _ in first]
    assert times == sorted(times) and times[0] == 0.0
    assert 199 / times[-1] == pytest.approx(10.0, rel=0.2)  # mean gap 1/rate
    assert all(3 <= len(p) <= 9 and 1 <= n <= 4 for _, p, n in first)


def test_load_summary_by_hand() -> None:
    requests = [
        RequestTiming(0.0, 4, 3, [0.1, 0.2, 0.4]),  # TTFT 100, TPOT 150, E2E 400
        RequestTiming(0.5, 4, 2, [0.55, 0.65]),  # TTFT 50, TPOT 100, E2E 150
        RequestTiming(1.0, 4, 2, [1.5]),  # cut off: not finished
    ]
    summary = summarize_load(requests, 2.0, slo_ttft_ms=120.0, slo_tpot_ms=120.0)
    assert summary["completed"] == 2 and summary["output_tokens"] == 5
    assert summary["ttft_ms"]["p50"] == pytest.approx(75.0)
    assert summary["tpot_ms"]["mean"] == pytest.approx(125.0)
    assert summary["itl_ms"]["n"] == 3 and summary["itl_ms"]["p50"] == pytest.approx(100.0)
    assert summary["makespan_s"] == pytest.approx(0.65)
    assert summary["output_tokens_per_s"] == pytest.approx(5 / 0.65)
    assert summary["goodput_rps"] == pytest.approx(1 / 0.65)  # only the second meets the SLO
    assert summary["slo_attainment"] == pytest.approx(1 / 3)
    assert summary["arrival_rate_rps"] == pytest.approx(2.0)
    assert distribution([])["p99"] is None


def test_knee_is_the_first_rate_the_engine_cannot_keep_up_with() -> None:
    def point(offered, arrivals, completions, throughput):
        return {"offered_rate_rps": offered, "arrival_rate_rps": arrivals,
                "completion_rate_rps": completions, "request_throughput_rps": throughput}

    knee = find_knee([point(40, 41, 25, 20), point(10, 9.5, 9.4, 9), point(20, 21, 20, 18)])
    assert knee["knee_rate_rps"] == 40 and knee["last_sustained_rate_rps"] == 20
    assert knee["max_throughput_rps"] == 20
    calm = find_knee([point(1, 1, 1, 1), point(2, 2, 1.9, 1.9)])
    assert calm["knee_rate_rps"] is None and calm["last_sustained_rate_rps"] == 2
