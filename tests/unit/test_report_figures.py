"""The roofline and budget in the Markdown report, the JSON export and the SVG figures, on the
real H200 trace (tests/data/h200) and the H100 fixtures."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from analyzers.ceilings import Ceilings
from analyzers.run_analysis import analyze_tables
from profilers.parsers.detect import load_artifact
from profilers.parsers.kernel_table import make_kernel_table
from tests.unit import h200_budget_data as h200
from workbench.cli import main
from workbench.export.json_export import analysis_to_dict, dumps
from workbench.export.markdown import render_artifact_report
from workbench.export.svg_figures import budget_svg, roofline_svg, write_figures

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def analysis():
    parsed = load_artifact(h200.TRACE)
    ceilings = Ceilings.from_dict(next(iter(json.loads(h200.CEILINGS.read_text()).values())))
    return analyze_tables("kineto", h200.fill_costs(parsed.kernels), runtime=parsed.runtime,
                          ops=parsed.ops, ceilings=ceilings, device_name="NVIDIA H200",
                          precision="bf16", annotations=h200.annotations(), workload="dense",
                          layers=h200.LAYERS, device_kind="cuda")


def _plot_box(root: ET.Element) -> tuple[float, float, float, float]:
    clip = root.find(f"{SVG}clipPath/{SVG}rect")
    x, y = float(clip.get("x")), float(clip.get("y"))
    return x, y, x + float(clip.get("width")), y + float(clip.get("height"))


def test_roofline_svg_draws_every_placed_kernel_inside_its_axes(analysis):
    root = ET.fromstring(roofline_svg(analysis))  # well-formed XML
    circles = [c for c in root.iter(f"{SVG}circle") if c.find(f"{SVG}title") is not None]
    placed = analysis.roofline.dropna(subset=["arithmetic_intensity", "achieved_flops_per_s"])
    assert len(circles) == len(placed) == 2  # the GEMV and the attention
    x0, y0, x1, y1 = _plot_box(root)
    for circle in circles:
        assert x0 <= float(circle.get("cx")) <= x1 and y0 <= float(circle.get("cy")) <= y1
    titles = " ".join(c.find(f"{SVG}title").text for c in circles)
    assert "gemv_m1_kernel: 387 launches" in titles and "memory-bound" in titles
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "0.1" in texts and "1" in texts  # decode GEMVs (~1 FLOP/B) are on the x axis
    assert any(t and t.startswith("DRAM 4.05 TB/s") for t in texts)
    assert any(t and t.startswith("bf16/fp16 746 TFLOP/s") for t in texts)
    assert "kernels by category" in texts and "area ∝ share of GPU time" in texts
    assert any(t and "17 kernel(s) without FLOPs or bytes not drawn" in t for t in texts)
    # The biggest kernel gets the biggest mark.
    radius = {c.find(f"{SVG}title").text.split(":")[0]: float(c.get("r")) for c in circles}
    assert radius["gemv_m1_kernel"] > max(r for n, r in radius.items() if n != "gemv_m1_kernel")


def test_roofline_svg_says_why_zero_flop_kernels_are_left_out_and_escapes_names():
    ceilings = Ceilings.from_dict(next(iter(json.loads(h200.CEILINGS.read_text()).values())))
    kt = make_kernel_table({"name": ["<script>&evil", "Memcpy DtoD (Device -> Device)"],
                            "dur_ns": [1000, 2000], "start_ns": [0, 5000],
                            "flops": [2e9, 0.0], "dram_bytes": [1e6, 4e6]}, source="torch")
    a = analyze_tables("kineto", kt, ceilings=ceilings)
    svg = roofline_svg(a)
    root = ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;&amp;evil" in svg
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert any(t and "1 kernel(s) with 0 FLOPs (copies, fills) not drawn: a log axis has no "
               "zero" in t for t in texts)
    x0, _, x1, _ = _plot_box(root)
    cx = float(next(c for c in root.iter(f"{SVG}circle") if c.find(f"{SVG}title") is not None)
               .get("cx"))
    assert x0 < cx < x1  # 2,000 FLOP/B, far right of the ridge: still on the chart


def test_budget_svg_bars_follow_the_ranked_lines(analysis):
    root = ET.fromstring(budget_svg(analysis))
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    lost = [ln for ln in analysis.budget.lines if ln.lost_ns]
    why_bars = [r for r in bars if r.find(f"{SVG}title").text in {ln.why for ln in lost}]
    assert len(why_bars) == len(lost)
    widths = [float(r.get("width")) for r in why_bars]
    assert widths == sorted(widths, reverse=True)  # ranked, largest first
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "772.9 µs" in texts  # the decode attention's lost time
    assert any(t and t.startswith("measured step 5.46 ms") for t in texts)


def test_markdown_report_one_row_per_kernel_and_the_budget(analysis):
    text = render_artifact_report(["trace.json.gz"], analysis,
                                  {"roofline": "r.roofline.svg", "budget": "r.budget.svg"})
    roof = text.split("## Roofline", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in roof.splitlines() if line.startswith("| gemv_m1_kernel")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].split("|")]
    assert cells[2] == "387" and cells[7] == "memory" and cells[10] == "inventory"
    assert cells[4] == "4.1 TFLOP/s" and cells[5] == "4.1 TB/s" and cells[8] == "101.2%"
    assert "![Roofline: one point per kernel, sized by its time](r.roofline.svg)" in roof
    budget = text.split("## Speed-of-light budget", 1)[1].split("\n## ", 1)[0]
    assert "(r.budget.svg)" in budget
    first = next(line for line in budget.splitlines() if line.startswith("| 1 |"))
    assert "cudnn_generated_fort_native_sdpa_sm90_flash_fprop" in first
    assert "| 32 | 777.1 µs | 4.27 µs | 772.9 µs |" in first
    assert "a better attention kernel" in first  # L3 is in the run: the remedy, no layer
    gemv = next(line for line in budget.splitlines() if "| gemv_m1_kernel |" in line)
    assert "L5-fp8: FP8 weights" in gemv
    assert "Measured step 5.46 ms (the mean of 3 profiled steps)" in budget


def test_json_export_roofline_per_kernel_and_budget(analysis):
    data = json.loads(dumps(analysis_to_dict(analysis)))
    names = [row["name"] for row in data["roofline"]]
    assert len(names) == len(set(names)) == analysis.kernels["name"].nunique()
    gemv = next(row for row in data["roofline"] if row["name"] == "gemv_m1_kernel")
    assert gemv["launches"] == 387 and gemv["cost_source"] == "inventory"
    other = next(row for row in data["roofline"] if row["flops"] is None)
    assert other["pct_of_roof"] is None and other["cost_source"] is None  # null, never 0
    budget = data["budget"]
    assert budget["steps"] == 3 and budget["lines"][0]["name"].startswith(h200.ATTENTION)
    assert budget["lines"][-1]["kind"] == "unknown" and budget["lines"][-1]["lost_ns"] is None
    assert budget["step_ns"] == budget["kernel_ns"] + budget["idle_ns"] + budget["host_ns"]


def test_analyze_export_writes_the_figures_beside_the_report(h100_fixtures, tmp_path, capsys):
    report = tmp_path / "out" / "h100.md"
    assert main(["--home", str(tmp_path / "home"), "analyze",
                 str(h100_fixtures / "torch_trace.json"), "--export", str(report)]) == 0
    capsys.readouterr()
    text = report.read_text()
    for name in ("roofline", "budget"):
        figure = report.with_name(f"h100.{name}.svg")
        ET.fromstring(figure.read_text())
        assert f"](h100.{name}.svg)" in text
    # No with_flops in this trace, but the ops' recorded shapes cost the GEMM and attention
    # kernels: they are drawn as points (a title each), the GEMM among them.
    roof = ET.fromstring(report.with_name("h100.roofline.svg").read_text())
    titled = [c.find(f"{SVG}title").text or "" for c in roof.iter(f"{SVG}circle")
              if c.find(f"{SVG}title") is not None]
    assert titled and any("nvjet" in t or "gemm" in t.lower() for t in titled)


def test_report_to_stdout_writes_no_figures(h100_fixtures, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--home", str(tmp_path / "home"), "analyze",
                 str(h100_fixtures / "torch_trace.json")]) == 0
    out = capsys.readouterr().out
    assert "## Speed-of-light budget" in out and ".svg)" not in out
    assert not list(Path(tmp_path).glob("*.svg"))
    assert write_figures(Path("-"), None) == {}


def test_figure_axes_cover_low_intensity_points():
    """An elementwise kernel at 0.08 FLOP/B and a GEMM at 5,000 FLOP/B both on the axes."""
    ceilings = Ceilings.from_dict(next(iter(json.loads(h200.CEILINGS.read_text()).values())))
    kt = make_kernel_table({"name": ["triton_poi_fused_add_0", "nvjet_sm90_gemm"],
                            "dur_ns": [10_000, 1_000_000], "start_ns": [0, 20_000],
                            "flops": [8e5, 5e14], "dram_bytes": [1e7, 1e11 / 1e3]},
                           source="torch")
    a = analyze_tables("kineto", kt, ceilings=ceilings)
    root = ET.fromstring(roofline_svg(a))
    x0, y0, x1, y1 = _plot_box(root)
    circles = [c for c in root.iter(f"{SVG}circle") if c.find(f"{SVG}title") is not None]
    assert len(circles) == 2
    for c in circles:
        assert x0 <= float(c.get("cx")) <= x1 and y0 <= float(c.get("cy")) <= y1
    ticks = {t.text for t in root.iter(f"{SVG}text")}
    assert "0.01" in ticks and "10000" in ticks
    assert math.isclose(pd.to_numeric(a.roofline["arithmetic_intensity"]).min(), 0.08)
    assert re.search(r"fp32 50\.6 TFLOP/s", " ".join(t or "" for t in ticks))


def test_report_says_when_the_profiler_stretched_the_step():
    """The budget's step is the profiled one; the 8B eager step ran 86 ms under the profiler
    and 26 ms timed. The report says so (and stays quiet when they agree)."""
    from analyzers.run_analysis import RunAnalysis
    from analyzers.sol_budget import SolBudget
    from workbench.export.markdown import _profiled_vs_timed

    def budget(step_ns: int) -> SolBudget:
        return SolBudget(step_ns=step_ns, steps=3, kernel_ns=6_670_000, sol_ns=3_660_000,
                         idle_ns=step_ns - 6_670_000, host_ns=0, coverage=1.0,
                         ceilings_source="measured", device_name="NVIDIA H200", lines=())

    stretched = RunAnalysis(budget=budget(86_000_000))
    text = " ".join(_profiled_vs_timed(stretched, {"latency_ms": {"median": 26.0}}))
    assert "profiled step (86 ms)" in text and "26 ms median" in text and "+231%" in text
    close = RunAnalysis(budget=budget(27_000_000))
    assert _profiled_vs_timed(close, {"latency_ms": {"median": 26.0}}) == []
    assert _profiled_vs_timed(stretched, {}) == []  # an artifact: no timed repeats
