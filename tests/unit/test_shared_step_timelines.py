"""One analysis finds the repeated steps once: the budget's step finder and the advice's facts
ask for the same frames' steps, and the search is ~0.1 s on a 1 GB trace."""

from __future__ import annotations

from pathlib import Path

import pytest

import analyzers.advice.steps as steps
from analyzers.kernel_costs import attach_kernel_costs
from analyzers.run_analysis import analyze_tables
from profilers.parsers.kineto import load_kineto

# Three steps of dense llama-3.1-8b on an H200 (tests/data/h200): a kernel sequence that
# repeats, read here without its ProfilerStep ranges so that the budget finds the steps too.
THREE_STEPS = Path(__file__).resolve().parents[1] / "data" / "h200" / \
    "dense_8b_best_bf16_3steps.trace.json.gz"


def _count_searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the searches for a repeating block (each search looks for its period once)."""
    searches: list[int] = []
    period = steps._period

    def counted(*args):
        searches.append(1)
        return period(*args)

    monkeypatch.setattr(steps, "_period", counted)
    return searches


def test_one_analysis_searches_the_steps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzers.ceilings import resolve_ceilings

    trace = load_kineto(THREE_STEPS)
    kernels, _, _ = attach_kernel_costs(trace.kernels, trace.ops, trace.runtime)
    ceilings = resolve_ceilings(trace.device_properties[0]["name"], None, {})
    searches = _count_searches(monkeypatch)
    analysis = analyze_tables("kineto", kernels, runtime=trace.runtime, ceilings=ceilings)
    assert analysis.budget is not None and analysis.budget.steps == 3  # the repeats
    assert len(searches) == 1  # the budget's finder and the advice's facts: one search


def test_outside_one_analysis_nothing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = load_kineto(THREE_STEPS)
    first = steps.step_timeline(trace.kernels, trace.runtime)
    with steps.shared_step_timelines():
        inside = steps.step_timeline(trace.kernels, trace.runtime)
        assert steps.step_timeline(trace.kernels, trace.runtime) is inside
        assert steps.step_timeline(trace.kernels, None) is not inside  # another question
    assert inside == first and first is not None and first.steps == 3
    searches = _count_searches(monkeypatch)
    steps.step_timeline(trace.kernels, trace.runtime)
    steps.step_timeline(trace.kernels, trace.runtime)
    assert len(searches) == 2
