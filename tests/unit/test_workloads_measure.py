"""Latency statistics, the repeat loop and the parity comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workloads import measure, parity
from workloads.interface import ParityOutputs

CPU = torch.device("cpu")


def test_latency_stats_on_known_samples():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0, 8.0, 7.0, 9.0]
    stats = measure.latency_stats(samples)
    assert stats["median"] == 5.5 and stats["mean"] == 5.5
    assert stats["min"] == 1.0 and stats["max"] == 10.0 and stats["n"] == 10
    for key, q in (("p10", 10), ("p90", 90), ("p99", 99)):
        assert math.isclose(stats[key], float(np.percentile(samples, q)))
    assert math.isclose(stats["stdev"], float(np.std(samples, ddof=1)))
    assert stats["samples"] == samples  # in measurement order, not sorted


def test_one_sample_has_no_stdev():
    stats = measure.latency_stats([2.5])
    assert stats["stdev"] is None and stats["p99"] == 2.5 and stats["n"] == 1


def test_run_repeats_excludes_warmup_and_resets_before_each_step():
    calls: list[str] = []
    events: list[tuple[str, int, int]] = []
    samples = measure.run_repeats(
        step=lambda: calls.append("step"), reset=lambda: calls.append("reset"), device=CPU,
        plan=measure.RepeatPlan(repeat=4, warmup=2),
        on_step=lambda phase, i, n: events.append((phase, i, n)))
    assert len(samples) == 4 and all(s >= 0 for s in samples)
    assert calls == ["reset", "step"] * 6
    assert events[:2] == [("warmup", 1, 2), ("warmup", 2, 2)]
    assert events[-1] == ("measure", 4, 4)


def test_time_generation_reports_ttft_and_per_token_time():
    result = measure.time_generation(lambda: None, lambda: 4, CPU, repeats=2)
    assert result["ttft_ms"] >= 0 and result["tpot_ms"] >= 0
    assert measure.time_generation(lambda: None, lambda: 0, CPU)["tpot_ms"] is None


def test_peak_memory_on_cpu_is_labelled_rss():
    peak, source = measure.peak_memory(CPU)
    assert peak > 10 * 2**20 and source == "process peak RSS"


def outputs(logits):
    return ParityOutputs(logits, logits.argmax(-1))


def test_parity_identical_logits_pass():
    logits = torch.randn(4, 2, 50, generator=torch.Generator().manual_seed(0))
    report = parity.compare(outputs(logits), outputs(logits.clone()), "fp32")
    assert report.ok and report.max_rel_err == 0.0 and report.top1_agreement == 1.0
    assert report.tokens_compared == 8 and report.reference == "L0"


def test_parity_error_is_normalised_by_the_largest_logit():
    logits = torch.zeros(1, 1, 4)
    logits[0, 0] = torch.tensor([10.0, 0.0, -2.0, 1.0])
    candidate = logits.clone()
    candidate[0, 0, 1] = 0.01  # 1e-3 of the largest logit
    report = parity.compare(outputs(logits), outputs(candidate), "tf32")
    assert report.max_rel_err == pytest.approx(1e-3)
    assert report.ok  # within tf32's 2e-3
    assert not parity.compare(outputs(logits), outputs(candidate), "fp32").ok


def test_parity_fails_on_disagreeing_tokens_and_on_nan():
    logits = torch.randn(10, 1, 8, generator=torch.Generator().manual_seed(1))
    flipped = -logits
    assert parity.compare(outputs(logits), outputs(flipped), "fp8").top1_agreement < 0.5
    broken = logits.clone()
    broken[0, 0, 0] = float("nan")
    assert not parity.compare(outputs(logits), outputs(broken), "bf16").ok
