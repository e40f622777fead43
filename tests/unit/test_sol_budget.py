"""The step speed-of-light budget on a real H200 trace: dense llama-3.1-8b, best bf16 stack
(L0-L4,L5,L5-gemv), 3 profiled decode steps (tests/data/h200; expected figures read from the
raw JSON with the stdlib and from the model's shapes, see h200_budget_data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analyzers.ceilings import Ceilings, spec_ceilings
from analyzers.run_analysis import analyze_tables
from analyzers.step_timeline import step_timeline
from profilers.parsers.detect import load_artifact
from profilers.parsers.kernel_table import make_kernel_table
from tests.unit import h200_budget_data as h200

H200 = "NVIDIA H200"


@pytest.fixture(scope="module")
def parsed():
    return load_artifact(h200.TRACE)


@pytest.fixture(scope="module")
def ceilings() -> Ceilings:
    return Ceilings.from_dict(json.loads(h200.CEILINGS.read_text())[f"{H200}|580.159.04"])


@pytest.fixture(scope="module")
def truth() -> dict:
    return h200.truth_steps()


def _budget(parsed, ceilings, kernels=None, annotations="default", **run):
    run = {"workload": "dense", "layers": h200.LAYERS, "device_kind": "cuda", **run}
    ann = h200.annotations() if isinstance(annotations, str) else annotations
    return analyze_tables("kineto", h200.fill_costs(parsed.kernels) if kernels is None else kernels,
                          runtime=parsed.runtime, ops=parsed.ops, ceilings=ceilings,
                          device_name=H200, precision="bf16", annotations=ann, **run).budget


def _line(budget, prefix: str):
    return next(line for line in budget.lines if line.name.startswith(prefix))


def test_decode_attention_is_the_largest_recoverable_gap(parsed, ceilings, truth):
    budget = _budget(parsed, ceilings)
    assert budget.steps == truth["steps"] == 3
    assert budget.ceilings_source == "measured" and budget.device_name == H200
    top = budget.lines[0]
    assert top.kind == "kernel" and top.name.startswith(h200.ATTENTION)
    assert top.launches == 32 and top.category == "attention" and top.bound == "memory"
    # ns rounding of 96 durations apart
    assert top.measured_ns == pytest.approx(truth["attention_us"] * 1e3, abs=5)  # ~777 us
    kv_bytes = 32 * h200.attention_cost()[1]  # ~17 MB of K and V a step
    assert top.sol_ns == pytest.approx(kv_bytes / ceilings.dram_bw * 1e9, abs=1)  # ~4.3 us
    assert top.lost_ns == top.measured_ns - top.sol_ns
    assert 700_000 < top.lost_ns < 800_000
    assert top.pct_of_roof < 1.0
    assert top.source == "inventory"
    assert "17.3 MB" in top.why and "4.05 TB/s memory roof" in top.why
    # The run has L3 (the attention layer): the remedy stands, no layer is named.
    assert top.remedy == "attention_kernel" and top.layer is None


def test_gemv_shows_near_its_roof(parsed, ceilings, truth):
    budget = _budget(parsed, ceilings)
    gemv = _line(budget, h200.GEMV)
    weights = sum(h200.gemv_cost(n, k)[1] for n, k in h200.GEMV_NK)  # ~15 GB a step
    assert gemv.launches == 129
    assert gemv.measured_ns == pytest.approx(truth["gemv_us"] * 1e3, abs=5)  # ~3.66 ms
    assert gemv.pct_of_roof == pytest.approx(weights / ceilings.dram_bw * 1e9
                                             / gemv.measured_ns * 100, rel=1e-6)
    assert gemv.pct_of_roof > 90 and gemv.lost_ns <= 0.03 * gemv.measured_ns
    assert gemv.bound == "memory" and "15 GB" in gemv.why
    # Near the roof: fewer bytes is what is left, and this run can still add FP8 weights.
    assert gemv.remedy == "fp8_weights" and gemv.layer == "L5-fp8"


def test_step_is_measured_per_profiled_step(parsed, ceilings, truth):
    budget = _budget(parsed, ceilings)
    assert budget.step_ns == pytest.approx(truth["step_us"] * 1e3, abs=2)  # ~5.46 ms
    assert budget.step_ns == budget.kernel_ns + budget.idle_ns + budget.host_ns
    # The time between the steps (the harness's synchronizations) is not in the step: each
    # step ends with its GPU work, ~0.1 ms before the next one starts.
    timeline = step_timeline(parsed.kernels, annotations=h200.annotations())
    starts = sorted(h200.annotations().query("name == 'aiperf:step' and kind == "
                                             "'user_annotation'")["start_ns"])
    assert timeline.step_ns[1] < starts[2] - starts[1] - 90_000
    # The first step's 2.3 ms of profiler buffer requests is not the model's time.
    assert any("profiler overhead inside the steps removed: 2330.3 us" in n
               for n in budget.notes)
    # Without the overhead events to say so, the first step (7.9 ms against 5.4 ms) is left
    # out rather than read as 2.5 ms of host time; the attention still ranks first.
    blind = _budget(parsed, ceilings, annotations=h200.annotations().query(
        "kind != 'overhead'"))
    assert blind.steps == 2 and any("first profiled step" in n for n in blind.notes)
    assert blind.step_ns == pytest.approx(timeline.step_ns[1:].mean(), abs=1)
    assert blind.host_ns < 150_000 and blind.lines[0].name.startswith(h200.ATTENTION)


def test_lines_ranked_and_unknown_never_counted_as_zero(parsed, ceilings):
    budget = _budget(parsed, ceilings)
    known = [line for line in budget.lines if line.kind != "unknown"]
    assert [line.lost_ns for line in known] == sorted((line.lost_ns for line in known),
                                                      reverse=True)
    unknown = budget.lines[-1]
    assert unknown.kind == "unknown" and unknown.sol_ns is None and unknown.lost_ns is None
    kt = parsed.kernels
    unfilled = ~(kt["name"].astype(str).str.startswith(h200.ATTENTION)
                 | (kt["name"].astype(str) == h200.GEMV))
    in_steps = step_timeline(kt, annotations=h200.annotations()).in_step
    assert unknown.measured_ns == pytest.approx(
        kt.loc[unfilled & in_steps, "dur_ns"].sum() / 3, abs=1)
    # The speed-of-light step keeps unknown kernels at their measured time.
    kernels = [line for line in budget.lines if line.kind in ("kernel", "category")]
    at_roof = sum(min(line.sol_ns, line.measured_ns) for line in kernels)
    assert budget.sol_ns == pytest.approx(at_roof + unknown.measured_ns, abs=3)
    assert budget.coverage == pytest.approx(
        sum(line.measured_ns for line in kernels)
        / (sum(line.measured_ns for line in kernels) + unknown.measured_ns), rel=1e-4)


def test_no_costs_means_everything_unknown(parsed, ceilings):
    budget = _budget(parsed, ceilings, kernels=parsed.kernels)
    assert not [line for line in budget.lines if line.kind in ("kernel", "category")]
    unknown = _line(budget, "unknown")
    assert unknown.measured_ns == pytest.approx(budget.kernel_ns, rel=0.001)
    assert budget.sol_ns == unknown.measured_ns and budget.coverage == 0.0


def test_layers_named_only_where_the_run_can_add_them(parsed, ceilings):
    eager = _budget(parsed, ceilings, layers=("L0",))
    assert eager.lines[0].layer == "L3"  # the same attention on an L0 run: the attention layer
    assert _line(eager, "idle gaps").layer == "L4"
    best = _budget(parsed, ceilings)
    for line in best.lines:
        assert line.layer not in h200.LAYERS
        assert line.layer is None or line.kind == "kernel"
    assert _line(best, "idle gaps").layer is None  # L4 is in the run
    moe = _budget(parsed, ceilings, workload="moe", layers=("L0",))
    assert _line(moe, h200.GEMV).layer == "L5-moe-fp8"
    assert _line(moe, "idle gaps").layer == "L4"  # CUDA graphs apply to MoE (not in that run)
    artifact = _budget(parsed, ceilings, workload=None, layers=())
    assert all(line.layer is None for line in artifact.lines)  # our layers are for our runs
    assert artifact.lines[0].remedy == "attention_kernel"


def test_spec_ceilings_when_not_calibrated(parsed):
    budget = _budget(parsed, spec_ceilings(H200))
    assert budget.ceilings_source == "spec"
    gemv = _line(budget, h200.GEMV)
    assert gemv.pct_of_roof == pytest.approx(  # the 4.8 TB/s data sheet
        sum(h200.gemv_cost(n, k)[1] for n, k in h200.GEMV_NK) / 4.8e12 * 1e9
        / gemv.measured_ns * 100, rel=1e-6)
    assert budget.lines[0].name.startswith(h200.ATTENTION)


def test_without_step_ranges_long_idle_stretches_are_not_the_step(h100_fixtures):
    """The H100 torch fixture has no step ranges and two memsets issued 1.06 s before its
    20 ms of work: the budget's step is the work, not 1.08 s of 'idle'."""
    parsed = load_artifact(h100_fixtures / "torch_trace.json")
    analysis = analyze_tables("kineto", parsed.kernels, runtime=parsed.runtime, ops=parsed.ops,
                              ceilings=spec_ceilings("NVIDIA H100 80GB HBM3"))
    budget = analysis.budget
    kt = parsed.kernels
    assert (kt["start_ns"] + kt["dur_ns"]).max() - kt["start_ns"].min() > 1e9
    # the steps are the repeats of the kernel sequence (the advice's step finder): two of
    # ~1.68 ms, as the advice's own steps; the 1.06 s before them is no part of a step
    assert budget.steps == 2 and 1.5e6 < budget.step_ns < 1.9e6
    assert budget.step_ns == budget.kernel_ns + budget.idle_ns + budget.host_ns
    assert 2 * budget.kernel_ns < kt["dur_ns"].sum()  # the two memsets are outside the steps
    assert any("no step ranges" in n and "repeats of its kernel sequence" in n
               for n in budget.notes)


def test_steps_from_profiler_step_ops_and_between_steps_excluded():
    """ProfilerStep#N as CPU ops (older torch), contiguous steps and a sync gap after each."""
    step, ops = 1_000_000, []
    names, starts, durs = [], [], []
    for i in range(4):
        t0 = i * 3 * step
        ops.append((f"ProfilerStep#{i}", t0, step // 2))  # host part of the step
        for k in range(10):
            names.append("triton_poi_fused_add_0")
            starts.append(t0 + 100_000 + k * 80_000)  # 100 us of host lead, 10 us gaps
            durs.append(70_000)
    kt = make_kernel_table({"name": names, "start_ns": starts, "dur_ns": durs,
                            "device": [0] * len(names), "stream": [7] * len(names),
                            "flops": [1e6] * len(names), "dram_bytes": [7e8] * len(names)},
                           source="torch")
    ops_frame = pd.DataFrame(ops, columns=["name", "start_ns", "dur_ns"])
    budget = analyze_tables("kineto", kt, ops=ops_frame,
                            ceilings=spec_ceilings("NVIDIA H200")).budget
    assert budget.steps == 4
    assert budget.step_ns == 100_000 + 9 * 80_000 + 70_000  # lead + work; not the 2 ms after
    assert budget.kernel_ns == 700_000 and budget.idle_ns == 90_000
    assert budget.host_ns == 100_000
    line = _line(budget, "triton_poi_fused_add_0")
    assert line.launches == 10 and line.measured_ns == 700_000
    assert line.sol_ns == pytest.approx(10 * 7e8 / 4.8e12 * 1e9, abs=1)
    assert line.remedy == "compile_fusion" and line.layer is None  # no workload: no layer


def test_ncu_artifacts_get_no_budget(h100_fixtures):
    from workbench.api.pipeline.analysis import analyze_paths

    _, analysis = analyze_paths([h100_fixtures / "ncu_raw.csv"])
    assert analysis.budget is None and analysis.roofline is not None
    assert any("no speed-of-light budget" in n for n in analysis.notes)


def test_budget_and_roofline_run_above_the_old_kernel_cap(parsed, ceilings):
    """The analysis skipped the roofline above 50,000 kernels; now it runs on every trace."""
    kt = h200.fill_costs(parsed.kernels)
    copies = 50  # 63,000 launches
    period = int(kt["start_ns"].max() - kt["start_ns"].min()) + 10_000_000
    reps = np.tile(np.arange(len(kt)), copies)
    shift = np.repeat(np.arange(copies), len(kt)) * period
    big = make_kernel_table({
        "name": kt["name"].astype(str).to_numpy()[reps], "dur_ns": kt["dur_ns"].to_numpy()[reps],
        "start_ns": kt["start_ns"].to_numpy(dtype="int64")[reps] + shift,
        "device": np.zeros(len(reps), dtype=int),
        "flops": kt["flops"].to_numpy(dtype="float64", na_value=np.nan)[reps],
        "dram_bytes": kt["dram_bytes"].to_numpy(dtype="float64", na_value=np.nan)[reps]},
        source="torch")
    ann = h200.annotations()
    big_ann = ann.iloc[np.tile(np.arange(len(ann)), copies)].reset_index(drop=True)
    big_ann["start_ns"] = big_ann["start_ns"] + np.repeat(np.arange(copies), len(ann)) * period
    analysis = analyze_tables("kineto", big, ceilings=ceilings, annotations=big_ann)
    assert len(big) > 50_000
    assert analysis.roofline is not None and len(analysis.roofline) == kt["name"].nunique()
    gemv = analysis.roofline.set_index("name").loc[h200.GEMV]
    assert gemv["launches"] == 129 * 3 * copies
    assert analysis.budget is not None and analysis.budget.steps == 3 * copies
    assert analysis.budget.lines[0].name.startswith(h200.ATTENTION)
    assert not any("skipped" in n for n in analysis.notes)
