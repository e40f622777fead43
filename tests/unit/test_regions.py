"""Regions (analyzers.regions): GPU time by NVTX range / annotation — on our own H200 trace, on
public nsys and Kineto artifacts against stdlib truth, and on small frames for the edge rules
(innermost range, threads, crossing ranges, overhead, GPU-timeline ranges, loops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzers.regions import diff_regions, normalize_name, region_analysis
from profilers.parsers.detect import load_artifact
from profilers.parsers.kernel_table import make_kernel_table
from profilers.parsers.ranges import ranges_frame
from tests.unit.external_data import external, truth

H200 = Path(__file__).resolve().parents[1] / "data" / "h200" / "dense_best_trace.json.gz"


def _ranges(rows: list[tuple], kind: str = "nvtx") -> pd.DataFrame:
    names, starts, ends, threads = zip(*rows, strict=True)
    return ranges_frame(names, list(starts), list(ends), kind, thread=list(threads))


def _kernels(launches: list[tuple[int, int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(KernelTable, runtime) for kernels launched at (time, thread) lasting dur."""
    n = len(launches)
    kt = make_kernel_table({"name": [f"k{i}" for i in range(n)],
                            "start_ns": [t + 1000 for t, _, _ in launches],
                            "dur_ns": [d for _, _, d in launches],
                            "correlation": list(range(n)), "device": [0] * n}, source="nsys")
    rt = pd.DataFrame({"name": ["cudaLaunchKernel"] * n,
                       "start_ns": pd.array([t for t, _, _ in launches], dtype="Int64"),
                       "dur_ns": pd.array([5] * n, dtype="Int64"),
                       "correlation": pd.array(range(n), dtype="Int64"),
                       "thread": pd.array([th for _, th, _ in launches], dtype="Int64")})
    return kt, rt


def test_innermost_range_on_the_launching_thread():
    ranges = _ranges([("step 1", 0, 100, 1), ("fwd", 10, 80, 1), ("mm", 20, 30, 1),
                      ("step 2", 100, 200, 1), ("fwd", 110, 180, 1),
                      ("other thread", 0, 200, 2)])
    kt, rt = _kernels([(25, 1, 5), (15, 1, 6), (125, 1, 7), (95, 1, 100), (50, 2, 3),
                       (300, 1, 8)])
    r = region_analysis(ranges, kt, rt)
    assert r is not None and r.attribution == "launch"
    own = dict(zip(r.by_name["name"], r.by_name["self_gpu_ns"], strict=True))
    assert own == {"mm": 5, "fwd": 6 + 7, "step 1": 100, "step 2": 0, "other thread": 3}
    assert r.total_gpu_ns == 129 and r.attributed_gpu_ns == 121  # the kernel at 300: none
    tree = r.tree.set_index("path")
    assert tree.loc["step *", "gpu_ns"] == 5 + 6 + 7 + 100 and tree.loc["step *", "count"] == 2
    assert tree.loc["step */fwd/mm", "depth"] == 2
    (loop,) = r.iterations  # the steps; "fwd" inside each is part of them, not another loop
    assert loop.name == "step *" and loop.count == 2
    assert loop.iterations["gpu_ns"].tolist() == [111, 7]


def test_crossing_ranges_noted_and_overhead_is_no_region():
    ranges = pd.concat([
        _ranges([("a", 0, 50, 1), ("b", 40, 90, 1)]),
        ranges_frame(["Activity Buffer Request"], [0], [1000], "overhead")], ignore_index=True)
    kt, rt = _kernels([(45, 1, 2), (60, 1, 3)])
    r = region_analysis(ranges, kt, rt)
    assert r.range_count == 2 and any("overlap a range they do not nest in" in n for n in r.notes)
    assert "Activity Buffer Request" not in set(r.by_name["name"])


def test_gpu_ranges_when_kernels_cannot_meet_their_launch():
    ranges = ranges_frame(["ProfilerStep#1", "ProfilerStep#2"], [0, 2000], [1500, 3500],
                          "gpu_user_annotation", device=[0, 0])
    kt, _ = _kernels([(0, 1, 10), (1500, 1, 20), (5000, 1, 30)])  # starts 1000, 2500, 6000
    r = region_analysis(ranges, kt, None)
    assert r.attribution == "gpu timeline" and r.attributed_gpu_ns == 30
    assert r.iterations[0].name == "ProfilerStep#*"


def test_torch_emit_nvtx_suffixes_are_dropped():
    assert normalize_name("aten::mm, seq = 12, op_id = 340, sizes = [[2, 3]]") == "aten::mm"
    assert normalize_name("my range") == "my range"


def test_h200_trace_steps_from_annotations():
    """Our own H200 trace (dense llama-3.1-8b, CUDA graphs): three aiperf:step ranges, every
    kernel launched inside one (graph replays included), their GPU copies give each step's
    span on the GPU."""
    parsed = load_artifact(H200)
    a = parsed.annotations
    assert sorted(a["kind"].astype(str).unique()) == ["gpu_user_annotation", "overhead",
                                                      "user_annotation"]
    r = region_analysis(a, parsed.kernels, parsed.runtime)
    assert r.attributed_gpu_ns == r.total_gpu_ns == int(parsed.kernels["dur_ns"].sum())
    (steps,) = r.iterations
    assert steps.name == "aiperf:step" and steps.count == 3
    assert steps.iterations["kernels"].tolist() == [420, 420, 420]
    gpu_ranges = a[a["kind"] == "gpu_user_annotation"].sort_values("start_ns")
    assert steps.iterations["gpu_span_ns"].tolist() == gpu_ranges["dur_ns"].tolist()
    assert steps.gpu_cv is not None and steps.gpu_cv < 0.01


def test_kineto_nested_annotations_match_stdlib_truth():
    """HTA's sampled DDP trace: nested record_function ranges on two threads; the region of
    every kernel equals the stdlib scan over the raw JSON (which matches on pid and tid)."""
    path = external("kineto", "hta_sampled_rank-0.json.gz")
    want = truth("kineto", "hta_sampled_rank-0.json.gz")
    parsed = load_artifact(path)
    r = region_analysis(parsed.annotations, parsed.kernels, parsed.runtime)
    assert r.total_gpu_ns == want["gpu_total_ns"] and r.attributed_gpu_ns == want["attributed_ns"]
    own = {n: v for n, v in zip(r.by_name["name"], r.by_name["self_gpu_ns"], strict=True) if v}
    assert own == want["self_ns_by_name"]
    steps = [s for s in r.iterations if s.name == "ProfilerStep#*"]
    assert steps and steps[0].iterations["name"].tolist() == want["profiler_steps"]


@pytest.mark.parametrize("name", ["mfu_2gpu_before.sqlite",
                                  "saxpy-mpi-cuda_nsys_perlmutter0.sqlite"])
def test_nsys_nvtx_regions_match_stdlib_truth(name):
    path = external("nsys", name)
    want = truth("nsys", name)["regions"]
    parsed = load_artifact(path)
    r = region_analysis(parsed.annotations, parsed.kernels, parsed.runtime)
    assert r.range_count == want["ranges"] and r.attributed_gpu_ns == want["attributed_ns"]
    own = {n: v for n, v in zip(r.by_name["name"], r.by_name["self_gpu_ns"], strict=True) if v}
    assert own == want["self_ns_by_name"]


def test_saxpy_loop_is_detected():
    parsed = load_artifact(external("nsys", "saxpy-mpi-cuda_nsys_perlmutter0.sqlite"))
    r = region_analysis(parsed.annotations, parsed.kernels, parsed.runtime)
    (loop,) = r.iterations
    assert loop.name == "saxpy" and loop.count == 5 and loop.coverage == 1.0
    assert int(loop.iterations["gpu_ns"].sum()) == r.attributed_gpu_ns


def test_diff_regions_before_after():
    """nsys-ai's before/after pair of the same 2-GPU job: per-range deltas add up to the
    change in ranged GPU time; a region diffed with itself changes nothing."""
    before = load_artifact(external("nsys", "mfu_2gpu_before.sqlite"))
    ra = region_analysis(before.annotations, before.kernels, before.runtime)
    same = diff_regions(ra, ra)
    assert (same.by_name["delta_ns"].fillna(0) == 0).all()
    after_path = external("nsys", "mfu_2gpu_before.sqlite").with_name("mfu_2gpu_after.sqlite")
    if not after_path.is_file():
        pytest.skip("mfu_2gpu_after.sqlite not present")
    after = load_artifact(after_path)
    rb = region_analysis(after.annotations, after.kernels, after.runtime)
    d = diff_regions(ra, rb)
    self_a = ra.by_name.set_index("name")["self_gpu_ns"]
    self_b = rb.by_name.set_index("name")["self_gpu_ns"]
    assert int(self_b.sum() - self_a.sum()) == rb.attributed_gpu_ns - ra.attributed_gpu_ns
    assert d.by_name["delta_ns"].abs().max() > 0
    row = d.by_name.set_index("name").loc["flash_attn::_flash_attn_forward"]
    assert row["delta_ns"] == row["b_gpu_ns"] - row["a_gpu_ns"]


def test_report_and_json_carry_regions(tmp_path, capsys):
    import json

    from workbench.cli import main

    out = tmp_path / "a.json"
    assert main(["--home", str(tmp_path), "analyze", str(H200), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## Regions (NVTX / annotations)" in text and "**aiperf:step**: 3 iterations" in text
    regions = json.loads(out.read_text())["regions"]
    assert regions["attribution"] == "launch" and len(regions["iterations"]) == 1
    assert [i["kernels"] for i in regions["iterations"][0]["iterations"]] == [420, 420, 420]
    assert np.isclose(sum(n["share"] for n in regions["tree"] if n["depth"] == 0), 1.0)


def test_categorical_and_object_columns_give_the_same_regions():
    """Names and kinds are read per category code where the columns are categorical (a
    million NVTX ranges); missing names and unused categories change nothing."""
    rows = [("step 1", 0, 100, 1), (None, 10, 80, 1), ("mm, op_id = 3", 20, 30, 1),
            ("step 2", 100, 200, 1), ("fwd", 110, 180, 1), ("mm, op_id = 9", 120, 130, 1)]
    names, starts, ends, threads = zip(*rows, strict=True)
    plain = ranges_frame(pd.Series(names, dtype=object), list(starts), list(ends), "nvtx",
                         thread=list(threads))
    plain["name"] = pd.Series(list(names), dtype=object)
    plain["kind"] = pd.Series(["nvtx"] * len(rows), dtype=object)
    cat = plain.copy()
    cat["name"] = pd.Categorical(list(names), categories=["unused", "step 2", "step 1", "mm, op_id = 3",
                                                         "fwd", "mm, op_id = 9"])
    cat["kind"] = pd.Categorical(["nvtx"] * len(rows), categories=["gpu_user_annotation", "nvtx"])
    kt, rt = _kernels([(25, 1, 5), (15, 1, 6), (125, 1, 7), (150, 1, 9)])
    a, b = region_analysis(plain, kt, rt), region_analysis(cat, kt, rt)
    assert a is not None and b is not None and a.source == b.source == "nvtx"
    pd.testing.assert_frame_equal(a.by_name, b.by_name)
    pd.testing.assert_frame_equal(a.tree, b.tree)
    assert "<unnamed>" in set(a.by_name["name"])
