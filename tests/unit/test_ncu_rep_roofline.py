"""The .ncu-rep roofline on real data: every metric NVIDIA's ncu_report (Nsight Compute
2025.3.1) read from ../shared/fixtures/h100/mm_full.ncu-rep on the GPU box
(tests/data/h100/mm_full_ncu_report.json.gz: our reader's JSON, 2,245 metrics x 3 kernels).

A stand-in ``ncu_report`` module replays those values through the documented API (value kinds
included), so the real child reader, table builder, roofline and ``analyze`` command run here.
A full report carries each tensor op count twice (``.sum`` and ``.sum.per_cycle_elapsed``, and
again per instruction: ``op_hgmma_src_bf16_...``) and device peaks (``.peak_sustained``) that
are non-zero for every kernel; on the GPU box the GEMM came out at 156% of its roof and the
elementwise kernels on the tensor roof. The expected values below are read from the JSON."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.api.pipeline.analysis import analyze_paths

DATA = Path(__file__).resolve().parents[1] / "data" / "h100" / "mm_full_ncu_report.json.gz"

STAND_IN = """
import gzip, json
_DATA = json.load(gzip.open({data!r}))
class IMetric:
    ValueKind_UNKNOWN, ValueKind_ANY, ValueKind_STRING, ValueKind_FLOAT, ValueKind_DOUBLE = range(5)
    def __init__(self, value, unit): self.value, self.unit_ = value, unit
    def unit(self): return self.unit_
    def kind(self):
        return IMetric.ValueKind_STRING if isinstance(self.value, str) else IMetric.ValueKind_DOUBLE
    def as_double(self): return 0.0 if isinstance(self.value, str) else float(self.value)
    def as_string(self): return self.value if isinstance(self.value, str) else None
class Action:
    def __init__(self, i): self.i = i
    def name(self): return _DATA["columns"]["Kernel Name"][self.i]
    def metric_names(self):
        return [n for n, v in _DATA["columns"].items()
                if n not in ("ID", "Kernel Name") and v[self.i] is not None]
    def metric_by_name(self, name):
        return IMetric(_DATA["columns"][name][self.i], _DATA["units"].get(name, ""))
class Range:
    def num_actions(self): return len(_DATA["columns"]["ID"])
    def action_by_idx(self, i): return Action(i)
class Context:
    def num_ranges(self): return 1
    def range_by_idx(self, i): return Range()
def load_report(path): return Context()
"""


@pytest.fixture(scope="module")
def report_values() -> dict:
    return json.loads(gzip.open(DATA).read())["columns"]


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> None:
    import profilers.parsers.ncu_rep as ncu_rep

    (tmp_path / "ncu_report.py").write_text(STAND_IN.format(data=str(DATA)))
    monkeypatch.setattr(ncu_rep, "ncu_python_dirs", lambda: [tmp_path])


def _row(frame, name_part: str, nth: int = 0):
    rows = frame[frame["name"].str.contains(name_part, regex=False)]
    return rows.iloc[nth]


def test_gemm_flops_counted_once_and_roof_below_peak(h100_fixtures, stand_in, report_values):
    parsed, analysis = analyze_paths([h100_fixtures / "mm_full.ncu-rep"])
    assert parsed.meta["reader"] == "ncu_report"
    assert analysis.device_name == "NVIDIA H100 80GB HBM3"
    i = report_values["Kernel Name"].index("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT")
    ops = report_values["sm__ops_path_tensor_src_bf16_dst_fp32.sum"][i]
    assert ops == 2 * 4096**3  # a 4096^3 bf16 GEMM: the counters are right, counted once
    gemm = _row(analysis.roofline_launches, "nvjet")
    assert gemm["roof"] == "tensor" and gemm["flops_method"] == "ncu tensor ops"
    assert gemm["flops"] == pytest.approx(ops)
    rate = report_values["sm__ops_path_tensor_src_bf16_dst_fp32.sum.per_second"][i]
    assert gemm["achieved_flops_per_s"] == pytest.approx(rate, rel=1e-3)  # 774 TFLOP/s
    assert gemm["pct_of_roof"] == pytest.approx(rate / 989.4e12 * 100, rel=1e-3)  # 78.3 %
    assert gemm["pct_of_roof"] < 100
    kt = analysis.kernels
    assert kt.loc[kt["name"].str.startswith("nvjet"), "flops"].iloc[0] == pytest.approx(ops)


def test_each_kernel_dram_rate_and_fp32_flops_match_the_report(h100_fixtures, stand_in,
                                                                report_values):
    _, analysis = analyze_paths([h100_fixtures / "mm_full.ncu-rep"])
    roof = analysis.roofline_launches  # one row per launch, in the report's order
    names = report_values["Kernel Name"]
    for i, name in enumerate(names):
        nth = names[:i].count(name)
        point = _row(roof, name, nth)
        assert point["dur_ns"] == pytest.approx(report_values["gpu__time_duration.sum"][i])
        assert point["achieved_bytes_per_s"] == pytest.approx(
            report_values["dram__bytes.sum.per_second"][i], rel=1e-3)
        if name.startswith("distribution"):  # curand fill: FP32 roof, FP32 counters
            assert point["roof"] == "fp32", point["note"]
            per_cycle = sum(w * report_values[
                f"smsp__sass_thread_inst_executed_op_{op}_pred_on.sum.per_cycle_elapsed"][i]
                for op, w in (("fadd", 1), ("fmul", 1), ("ffma", 2)))
            clock = report_values["smsp__cycles_elapsed.avg.per_second"][i]
            assert point["achieved_flops_per_s"] == pytest.approx(per_cycle * clock, rel=1e-3)
            assert point["flops_method"] == "ncu fp32 fadd/fmul/ffma"


def test_analyze_command_prints_the_roofline_rows(h100_fixtures, stand_in, tmp_path):
    """`aiperf-workbench analyze mm_full.ncu-rep`, as a user runs it (its child reader finds
    the stand-in through the patched search path only in-process, so point it there too)."""
    env_dir = tmp_path  # the stand-in's directory
    code = ("import sys, profilers.parsers.ncu_rep as r; "
            f"r.ncu_python_dirs = lambda: [__import__('pathlib').Path({str(env_dir)!r})]; "
            "from workbench.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "analyze",
                           str(h100_fixtures / "mm_full.ncu-rep")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "source: ncu_rep, device: NVIDIA H100 80GB HBM3" in out
    gemm_line = next(line for line in out.splitlines()
                     if line.startswith("| nvjet") and "tensor bf16" in line)
    assert "774 TFLOP/s" in gemm_line and "78.3%" in gemm_line and "719 GB/s" in gemm_line
    # The two curand fills are one kernel: one row, 2 launches, their bytes over their time.
    fill_lines = [line for line in out.splitlines()
                  if line.startswith("| distribution_elementwise") and "fp32" in line]
    assert len(fill_lines) == 1
    values = json.loads(gzip.open(DATA).read())["columns"]
    fills = [i for i, n in enumerate(values["Kernel Name"]) if n.startswith("distribution")]
    secs = [values["gpu__time_duration.sum"][i] * 1e-9 for i in fills]
    rate = sum(values["dram__bytes.sum.per_second"][i] * t for i, t in zip(fills, secs,
                                                                          strict=True)) / sum(secs)
    cells = [c.strip() for c in fill_lines[0].split("|")]
    assert cells[2] == "2" and cells[5] == f"{rate / 1e12:.3g} TB/s"  # ~1.32 TB/s
