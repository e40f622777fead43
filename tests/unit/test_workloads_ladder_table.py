"""The ladder table: speedups from tokens/s, PARITY FAIL instead of a speedup, explanations."""

from __future__ import annotations

from sessions.records import RunRecord, RunStatus
from workbench.api.ladder import default_layer_sets, parse_layer_sets
from workbench.export.ladder_md import build_ladder, render_ladder_markdown
from workloads.spec import RunSpec


def record(run_id, layers, tps, p10, p90, ok=True, outcomes=(), status="ok", extra=None):
    median = 1e3 / tps
    return RunRecord(
        id=run_id, created_at=0.0, status=RunStatus(status), spec=RunSpec(layers=layers),
        metrics={"tokens_per_s": tps, "peak_mem_bytes": 2**30,
                 "latency_ms": {"median": median, "p99": median * 1.1, "p10": p10, "p90": p90}},
        parity={"ok": ok, "max_rel_err": 0.01 if ok else 0.4, "top1_agreement": 1.0 if ok
                else 0.5},
        layers_applied=[{"name": n, "applied": a, "reason": r} for n, a, r in outcomes],
        details=extra or {})


def test_speedups_parity_fail_and_explanations():
    records = [
        record("a", ["L0"], 100.0, 9.9, 10.1),
        record("b", ["L0", "L1"], 200.0, 4.9, 5.1),
        record("c", ["L0", "L1", "L4"], 190.0, 5.1, 5.4,
               outcomes=[("L4", False, "needs a CUDA GPU (run is on cpu)")]),
        record("d", ["L0", "L1", "L4", "L5-fp8"], 400.0, 2.4, 2.6, ok=False),
        record("e", ["L0", "L1", "L4", "L6-paged"], 150.0, 6.5, 6.8),
    ]
    rows = build_ladder(records)
    assert [r.label for r in rows] == ["L0", "+L1", "+L4", "+L5-fp8", "+L6-paged"]
    assert rows[1].step_speedup == 2.0 and rows[1].cumulative_speedup == 2.0
    # L4 was not applied (a CPU): the row ran L0,L1 again; its 0.95x is noise, not L4's.
    assert rows[2].skipped_all == "L4 needs a CUDA GPU (run is on cpu)"
    assert rows[2].step_speedup is None and rows[2].cumulative_speedup is None
    assert rows[3].step_speedup is None and rows[3].cumulative_speedup is None
    # The rows before failed parity or repeated a stack: the step compares with the last row
    # that changed something and kept parity (+L1, 200 tok/s).
    assert abs(rows[4].step_speedup - 150 / 200) < 1e-9 and "gathers" in rows[4].explanation
    assert rows[4].cumulative_speedup == 1.5
    text = render_ladder_markdown(rows, {"workload": "dense", "preset": "tiny"})
    assert "PARITY FAIL (rel 0.4, top-1 0.5)" in text
    assert "| +L5-fp8 | 400 |" in text and "| PARITY FAIL | PARITY FAIL |" in text
    assert "| +L4 | 190 |" in text and "| not applied | not applied |" in text
    assert "0.95x" not in text
    assert "**+L4** not applied: L4 needs a CUDA GPU (run is on cpu)" in text
    assert "**+L5-fp8** breaks parity" in text and "**+L6-paged** is 0.75x" in text


def test_rows_whose_layers_were_not_applied_show_no_speedup_on_a_cpu():
    """The issue's CPU ladder: +L4, +L5-fp8, +L5-gemv not applied showed 1.03x, 1.32x,
    1.13x as if they did something."""
    cpu = "needs a CUDA GPU (run is on cpu)"
    records = [record("a", ["L0"], 100.0, 9.5, 10.5),
               record("b", ["L0", "L1"], 101.0, 9.4, 10.4),
               record("c", ["L0", "L1", "L4"], 104.0, 9.2, 10.0, outcomes=[("L4", False, cpu)]),
               record("d", ["L0", "L1", "L4", "L5-fp8"], 137.0, 7.0, 7.6,
                      outcomes=[("L4", False, cpu), ("L5-fp8", False, cpu)]),
               record("e", ["L0", "L1", "L4", "L5-fp8", "L5-gemv"], 155.0, 6.2, 6.8,
                      outcomes=[("L4", False, cpu), ("L5-fp8", False, cpu),
                                ("L5-gemv", False, cpu)])]
    rows = build_ladder(records)
    for row in rows[2:]:
        assert row.skipped_all and row.step_speedup is None and row.cumulative_speedup is None
    text = render_ladder_markdown(rows, {"workload": "dense", "preset": "tiny"})
    for speedup in ("1.03x", "1.32x", "1.13x", "1.04x", "1.37x", "1.55x"):
        assert speedup not in text
    assert "**+L5-gemv** not applied: L5-gemv needs a CUDA GPU (run is on cpu)" in text
    assert "- L5-gemv: not applied — needs a CUDA GPU (run is on cpu)" in text


def test_the_spread_note_gives_this_runs_measured_spread_not_an_h200s():
    eager = {"runtime": {"cuda_graphs": False, "compile_mode": None}}
    rows = build_ladder([record("a", ["L0"], 100.0, 9.0, 11.0, extra=eager),
                         record("b", ["L0", "L1"], 95.0, 9.5, 12.0, extra=eager)])
    note = rows[1].explanation
    assert "H200" not in note and "27.6" not in note and "~30%" not in note
    # p10-p90 over the median: 2/10 = 20% before, 2.5/10.53 = 24% now
    assert "p10-p90 spread 20% → 24% of the median in this run" in note
    assert "the p10-p90 ranges overlap (9–11 ms vs 9.5–12 ms)" in note


def test_speculative_mismatch_is_a_parity_failure_and_slow_layers_are_explained():
    records = [record("a", ["L0"], 100.0, 9.9, 10.1),
               record("b", ["L0", "L6-paged"], 50.0, 19.0, 21.0),
               record("c", ["L0", "L6-paged", "L6-spec"], 60.0, 16.0, 17.0,
                      extra={"speculative": {"matches_greedy": False}})]
    rows = build_ladder(records)
    assert "gathers the blocks" in rows[1].explanation
    assert rows[2].parity_ok is False and rows[2].step_speedup is None


def test_eager_steps_slower_than_the_one_before_name_the_host_bound_noise():
    eager = {"runtime": {"cuda_graphs": False, "compile_mode": None}}
    graphed = {"runtime": {"cuda_graphs": True, "compile_mode": None}}
    rows = build_ladder([record("a", ["L0"], 36.0, 27.0, 29.0, extra=eager),
                         record("b", ["L0", "L1"], 32.0, 30.0, 34.0, extra=eager),
                         record("c", ["L0", "L1", "L4"], 131.0, 7.6, 7.7, extra=graphed),
                         record("d", ["L0", "L1", "L4", "L6-paged"], 120.0, 8.2, 8.4,
                                extra=graphed)])
    assert "bound by the host's kernel launches" in rows[1].explanation
    assert "TF32 changes fp32 matmuls only" in rows[1].explanation
    assert "host" not in rows[3].explanation  # graphed steps: no launch-bound excuse


def test_default_sets_are_cumulative_and_parse():
    sets = default_layer_sets("dense")
    assert sets[0] == ["L0"] and sets[1] == ["L0", "L1"] and sets[-1][-1] == "L6-spec"
    assert all(later[:-1] == earlier for earlier, later in zip(sets, sets[1:], strict=False))
    assert not any("moe" in name for name in sets[-1])
    assert parse_layer_sets("L0; L0,L2 ;L0-L1") == [["L0"], ["L0", "L2"], ["L0", "L1"]]


def test_speculative_near_tie_keeps_parity_and_says_so():
    spec = {"matches_greedy": False, "verdict": "near_tie", "first_departure_step": 9,
            "departure_gap_rel": 0.002, "tolerance_rel": 0.05}
    rows = build_ladder([record("a", ["L0"], 100.0, 9.9, 10.1),
                         record("b", ["L0", "L6-spec"], 130.0, 7.6, 7.8,
                                extra={"speculative": spec})])
    assert rows[1].parity_ok is True and rows[1].step_speedup == 1.3
    assert ("L6-spec", "departs from the greedy decode at token 9 where the two logits differ "
            "by 0.002 of the largest (tolerance 0.05): a near-tie, rounding") in rows[1].notes
    diverged = {**spec, "verdict": "diverged", "departure_gap_rel": 0.3}
    rows = build_ladder([record("a", ["L0"], 100.0, 9.9, 10.1),
                         record("b", ["L0", "L6-spec"], 130.0, 7.6, 7.8,
                                extra={"speculative": diverged})])
    assert rows[1].parity_ok is False and rows[1].step_speedup is None


def test_a_layer_that_says_it_had_no_effect_gets_no_speedup():
    """L1 on a CPU runs and notes "no effect on CPU": the row is L0 again, its ratio noise."""
    rows = build_ladder([record("a", ["L0"], 44.7, 40.0, 50.0),
                         record("b", ["L0", "L1"], 154.0, 10.0, 90.0,
                                outcomes=[("L1", True, "no effect on CPU")]),
                         record("c", ["L0", "L1", "L2"], 60.0, 15.0, 17.0)])
    assert rows[1].skipped_all == "L1 no effect on CPU" and rows[1].step_speedup is None
    assert abs(rows[2].step_speedup - 60.0 / 44.7) < 1e-9  # vs L0: the last row that changed
    text = render_ladder_markdown(rows, {"workload": "dense", "preset": "tiny"})
    assert "| no effect | no effect |" in text and "3.44x" not in text
    assert "**+L1** no effect: L1 no effect on CPU" in text
