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


def _dense(layers: int):
    from workloads import catalog, dense

    workload = dense.DenseWorkload()
    params = {**catalog.get_preset("dense", "tiny"), "layers": layers}
    workload.build(CPU, torch.float32, params, seed=0)
    return workload


def test_ncu_sample_is_one_block_also_when_graphed():
    from workloads.layers.compiled import apply_graphs

    assert _dense(layers=2).profile_sample() is None  # too few blocks to sample
    workload = _dense(layers=4)
    sample = workload.profile_sample()
    assert sample is not None and sample.blocks_total == 4 and sample.blocks_profiled == 1
    assert sample.spans == [(workload.model.blocks[3], workload.model.blocks[3])]
    assert "multiply" in sample.describe()["note"]
    apply_graphs(workload, CPU)
    # graphed or compiled steps are sampled too: the gate is installed before compile and
    # capture, and a graph is bypassed while profiled (hooks do not fire on replay)
    sample = workload.profile_sample()
    assert sample is not None and sample.graph_bypass is not None
    with sample.graph_bypass() as bypassed:
        assert bypassed is False  # no graph was captured on the CPU


def test_sampled_profiler_range_opens_around_the_block_only(monkeypatch):
    """The hooks call cudaProfilerStart/Stop (stood in for here: CUDA is absent) exactly
    around the sampled block of each measured step, and never during warm-up."""
    workload = _dense(layers=4)
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    log: list[str] = []
    blocks = workload.model.blocks
    for i, block in enumerate(blocks):
        block.register_forward_pre_hook(lambda *_, i=i: log.append(f"block{i}"))
    monkeypatch.setattr(torch.cuda.profiler, "start", lambda: log.append("START"))
    monkeypatch.setattr(torch.cuda.profiler, "stop", lambda: log.append("STOP"))
    sample = workload.profile_sample()
    gate = measure.ProfilerGate(sample.spans)
    workload.step(inputs)  # the warm-up: gate shut
    assert "START" not in log
    log.clear()
    with torch.inference_mode(), gate.open():
        workload.step(inputs)
        workload.step(inputs)
    assert gate.opened == 2
    step_log = log[:log.index("STOP") + 1]
    # the decoder's own pre-hooks were registered first, so block 3's label precedes START
    assert step_log == ["block0", "block1", "block2", "block3", "START", "STOP"]
    workload.step(inputs)  # gate shut again
    assert log.count("START") == 2
    gate.remove()


def test_ncu_scope_is_checked_before_launch(tmp_path, monkeypatch):
    from profilers.ncu import NcuWrapper
    from workloads.errors import WorkbenchError
    from workloads.spec import RunSpec

    monkeypatch.setenv("AIPERF_NCU", "/bin/true")
    spec = RunSpec(workload="dense", preset="tiny", profiler="ncu",
                   profiler_options={"scope": "layer"})
    with pytest.raises(WorkbenchError, match="scope=step"):
        NcuWrapper().wrap(["python"], tmp_path, spec)


@pytest.mark.parametrize(("workload_name", "profiled"), [("moe", 1), ("gptoss", 2)])
def test_moe_ncu_sample_is_the_last_layer_and_fires_in_a_step(workload_name, profiled,
                                                             monkeypatch):
    from workloads import catalog
    from workloads.gptoss import GptOssWorkload
    from workloads.moe import MoEWorkload

    workload = {"moe": MoEWorkload, "gptoss": GptOssWorkload}[workload_name]()
    params = {**catalog.get_preset(workload_name, "tiny"), "layers": 4}
    workload.build(CPU, torch.float32, params, seed=0)
    sample = workload.profile_sample()
    assert sample is not None and sample.blocks_total == 4
    assert sample.blocks_profiled == profiled  # gpt-oss alternates window / full attention
    assert f"by {4 / profiled:g} for" in sample.describe()["note"]
    log: list[str] = []
    monkeypatch.setattr(torch.cuda.profiler, "start", lambda: log.append("START"))
    monkeypatch.setattr(torch.cuda.profiler, "stop", lambda: log.append("STOP"))
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    gate = measure.ProfilerGate(sample.spans)
    with torch.inference_mode(), gate.open():
        workload.step(inputs)
    gate.remove()
    assert gate.opened == 2 * profiled and log == ["START", "STOP"] * (2 * profiled)
