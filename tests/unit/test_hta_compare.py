"""HTA next to ours on the real H100 trace: the comparison rows carry both numbers and the
difference, checked against sums taken straight from the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analyzers.hta_compare import compare_with_hta, kernel_totals_vs_hta
from workbench.api.pipeline.analysis import analyze_paths

pytest.importorskip("hta")

from workbench.api.pipeline.hta_runner import run_hta, stage_trace_dir  # noqa: E402
from workbench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def trace(h100_fixtures: Path) -> Path:
    return h100_fixtures / "torch_trace.json"


@pytest.fixture(scope="module")
def compared(trace: Path):
    parsed, analysis = analyze_paths([trace])
    hta = run_hta([trace])
    return analysis, hta, compare_with_hta(analysis.kernels, analysis.temporal, parsed.runtime, hta)


def _gpu_events(trace: Path) -> list[dict]:
    doc = json.loads(trace.read_text())
    return [e for e in doc["traceEvents"] if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy")]


def test_gpu_total_row_is_exact_for_us_and_floored_for_hta(trace: Path, compared) -> None:
    _, hta, cmp = compared
    assert hta.errors == {}
    row = next(r for r in cmp.rows if r.metric.startswith("GPU time"))
    events = _gpu_events(trace)
    assert row.ours == pytest.approx(sum(e["dur"] for e in events), abs=1e-6)
    # HTA rounds each event inward to whole microseconds: ceil(start), floor(end).
    assert row.hta == sum(math.floor(e["ts"] + e["dur"]) - math.ceil(e["ts"]) for e in events)
    assert row.delta == pytest.approx(row.hta - row.ours)
    assert row.delta_pct == pytest.approx((row.hta - row.ours) / row.ours * 100)
    assert row.agree is False and "rounds" in row.why


def test_per_kernel_totals_and_launch_counts(trace: Path, compared) -> None:
    analysis, hta, cmp = compared
    per = kernel_totals_vs_hta(analysis.kernels, hta.kernels).set_index("name")
    sums: dict[str, float] = {}
    for e in _gpu_events(trace):
        sums[e["name"]] = sums.get(e["name"], 0.0) + e["dur"]
    assert set(per.index) == set(sums)
    for name, total in sums.items():
        assert per.loc[name, "ours_us"] == pytest.approx(total, abs=1e-6)
    launches = next(r for r in cmp.rows if r.metric.startswith("kernel launches"))
    doc = json.loads(trace.read_text())
    hta_apis = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cudaMemcpyAsync", "cudaMemsetAsync")
    assert launches.hta == sum(1 for e in doc["traceEvents"] if e.get("name") in hta_apis)
    assert launches.ours == sum(1 for e in doc["traceEvents"] if e.get("cat") == "kernel")
    assert cmp.launch_summary["launches"] == launches.hta
    window = next(r for r in cmp.rows if r.metric == "measured window")
    assert window.agree is True  # same window: the idle difference is HTA's rounding alone
    assert window.ours == pytest.approx(analysis.temporal.window_ns / 1000.0)
    idle = next(r for r in cmp.rows if r.metric == "GPU idle time")
    assert idle.hta == pytest.approx(float(hta.temporal["idle_time(us)"].sum()))
    assert cmp.idle_by_category is not None
    assert set(cmp.idle_by_category["idle_category"]) >= {"host_wait", "kernel_wait"}


def test_staging_refuses_ranks_that_collide(trace: Path, tmp_path: Path) -> None:
    from workloads.errors import WorkbenchError

    (tmp_path / "stage").mkdir()
    assert stage_trace_dir([trace], tmp_path / "stage") == [0]
    assert (tmp_path / "stage" / "rank-0.json").resolve() == trace.resolve()
    (tmp_path / "again").mkdir()
    with pytest.raises(WorkbenchError, match="unique rank"):
        stage_trace_dir([trace, trace], tmp_path / "again")


def test_analyze_hta_cli_report_and_json(trace: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a.json"
    assert main(["--home", str(tmp_path), "analyze", str(trace), "--hta", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## HTA" in text and "HTA idle-time breakdown" in text
    assert "differ by" in text and "HTA CUDA kernel launch statistics" in text
    data = json.loads(out.read_text())
    rows = {r["metric"]: r for r in data["hta"]["rows"]}
    assert rows["kernel names"]["agree"] is True
    assert data["kernel_total_ns"] == sum(round(e["dur"] * 1000) for e in _gpu_events(trace))
