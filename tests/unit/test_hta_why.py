"""`analyze --hta` keeps our analysis whatever HTA does, and its "why" column claims only what
it can show: HTA's figure recomputed from our exact table (inward rounding, the last
ProfilerStep dropped), checked here against sums taken straight from the trace files."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analyzers.hta_compare import UNEXPLAINED, compare_with_hta, explain
from workbench.api.pipeline.analysis import analyze_paths
from workbench.cli import main

pytest.importorskip("hta")

from workbench.api.pipeline.hta_runner import hta_version, profiler_step_starts, run_hta  # noqa: E402

H200 = Path(__file__).resolve().parents[1] / "data" / "h200"
# A real H200 trace (llama-3.1-8b, L0-L5-gemv, CUDA graphs): its correlation ids all fit in
# int8, and HTA (<= 0.6) downcasts them so; under pandas 3 its TraceAnalysis then raises.
GRAPH_TRACE = H200 / "dense_8b_L0-L5gemv_graphs_trace.json.gz"
PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def _gpu_events(doc: dict) -> list[dict]:
    return [e for e in doc["traceEvents"] if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")]


def test_hta_failure_is_a_note_and_our_analysis_stands(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a.json"
    rc = main(["--home", str(tmp_path), "analyze", str(GRAPH_TRACE), "--hta", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    doc = json.loads(gzip.open(GRAPH_TRACE, "rt").read())
    ours = json.loads(out.read_text())
    # Our analysis is all there, exact.
    assert "## GPU time by category" in text
    assert ours["kernel_total_ns"] == sum(round(e["dur"] * 1000) for e in _gpu_events(doc))
    hta = ours["hta"]
    assert hta["hta_version"] == hta_version() and hta["pandas_version"] == pd.__version__
    if not PANDAS_3:
        pytest.skip("HTA builds its TraceAnalysis under pandas < 3: nothing to report")
    assert "int8" in hta["errors"]["trace_analysis"]
    assert "transform_correlation_to_index" in hta["errors"]["trace_analysis"]
    assert hta["rows"] == []
    section = text[text.index("## HTA"):]
    assert f"HTA {hta_version()} with pandas {pd.__version__} produced no figures" in section
    assert "Traceback" not in text


def test_hta_not_installed_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], h100_fixtures: Path) -> None:
    import workbench.api.pipeline.hta_runner as runner

    monkeypatch.setattr(runner, "hta_available", lambda: False)
    assert main(["--home", str(tmp_path), "analyze", str(h100_fixtures / "torch_trace.json"),
                 "--hta"]) == 0
    text = capsys.readouterr().out
    assert "## GPU time by category" in text and "not installed" in text


def _stepped_trace(src: Path, dst: Path, split_us: float) -> tuple[dict, float]:
    """The real H100 trace with two ProfilerStep annotations added, split at ``split_us``."""
    doc = json.loads(src.read_text())
    ts = [e["ts"] for e in doc["traceEvents"] if isinstance(e.get("ts"), int | float)]
    first, last = min(ts), max(e["ts"] + e.get("dur", 0) for e in doc["traceEvents"]
                              if isinstance(e.get("ts"), int | float))
    pid_tid = next((e["pid"], e["tid"]) for e in doc["traceEvents"] if e.get("cat") == "cpu_op")
    for n, (a, b) in enumerate([(first, split_us), (split_us, last)], start=1):
        doc["traceEvents"].append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{n}",
                                   "pid": pid_tid[0], "tid": pid_tid[1], "ts": a, "dur": b - a,
                                   "args": {}})
    dst.write_text(json.dumps(doc))
    return doc, split_us


def test_hta_dropping_the_last_profiler_step_is_shown(tmp_path: Path, h100_fixtures: Path) -> None:
    split = 4463940278000.0  # between the real launches: some before, some after
    doc, split = _stepped_trace(h100_fixtures / "torch_trace.json", tmp_path / "stepped.json", split)
    trace = tmp_path / "stepped.json"
    assert profiler_step_starts(trace) == {1: round(min(
        e["ts"] for e in doc["traceEvents"] if isinstance(e.get("ts"), int | float)) * 1000),
        2: round(split * 1000)}
    parsed, analysis = analyze_paths([trace])
    hta = run_hta([trace])
    cmp = compare_with_hta(analysis.kernels, analysis.temporal, parsed.runtime, hta)
    # HTA's rule, from the file alone: GPU activities whose launch call (same correlation)
    # starts, rounded up, before the last step's rounded-up start; each rounded inward.
    cpu_corr = {e["args"]["correlation"] for e in doc["traceEvents"]
                if e.get("cat") in ("cuda_runtime", "cuda_driver")
                and math.ceil(e["ts"]) < math.ceil(split)}
    kept = [e for e in _gpu_events(doc) if e["args"].get("correlation") in cpu_corr]
    assert 0 < len(kept) < len(_gpu_events(doc))
    expected = sum(math.floor(e["ts"] + e["dur"]) - math.ceil(e["ts"]) for e in kept)
    row = next(r for r in cmp.rows if r.metric.startswith("GPU time"))
    assert row.hta == expected
    assert row.why.startswith("HTA drops the last ProfilerStep")
    assert f"keeps the {len(kept)} of {len(_gpu_events(doc))}" in row.why


def test_hta_larger_than_ours_is_unexplained(h100_fixtures: Path) -> None:
    trace = h100_fixtures / "torch_trace.json"
    parsed, analysis = analyze_paths([trace])
    hta = run_hta([trace])
    assert hta.errors == {}
    inflated = hta.kernels.copy()
    inflated["sum (us)"] = inflated["sum (us)"] * 1.3  # nothing we know makes HTA larger
    cmp = compare_with_hta(analysis.kernels, analysis.temporal, parsed.runtime,
                           dataclasses.replace(hta, kernels=inflated))
    row = next(r for r in cmp.rows if r.metric.startswith("GPU time"))
    assert row.hta > row.ours and row.why == UNEXPLAINED
    per = cmp.kernel_disagreements
    # A name HTA rounds to 0 us stays 0 when inflated: still explained by rounding.
    assert set(per.loc[per["hta_us"] > 0, "explained_by"]) == {UNEXPLAINED}


def test_rounding_is_claimed_only_when_lower_by_at_most_about_1us_per_event() -> None:
    # No replay at hand (e.g. no runtime frame): direction and size decide.
    assert explain("sum_us", 1000.0, 990.0, [], events=20).startswith("HTA rounds each event")
    assert explain("sum_us", 1000.0, 990.0, [], events=5) == UNEXPLAINED  # 2 us per event
    assert explain("sum_us", 1000.0, 1001.0, [], events=5000) == UNEXPLAINED  # HTA larger
