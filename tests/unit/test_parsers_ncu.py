"""ncu raw CSV (and .ncu-rep) parsing on the real H100 output."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from profilers.parsers._ncu_common import parse_dims, parse_number, unit_factor
from profilers.parsers.ncu_csv import load_ncu_csv, parse_ncu_csv_text
from profilers.parsers.ncu_rep import load_ncu_rep, ncu_report_available
from workloads.errors import WorkbenchError


def _rows(h100_fixtures):
    lines = (h100_fixtures / "ncu_raw.csv").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    rows = list(csv.DictReader(lines[start:]))
    return rows[0], rows[1:]


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def test_durations_dram_and_flops_match_the_csv(h100_fixtures):
    units, rows = _rows(h100_fixtures)
    assert units["gpu__time_duration.sum"] == "ns"
    res = load_ncu_csv(h100_fixtures / "ncu_raw.csv")
    k, m = res.kernels, res.metrics
    assert len(k) == len(rows) == len(m) == 6
    assert k["name"].astype(str).tolist() == [r["Kernel Name"] for r in rows]
    assert k["dur_ns"].sum() == sum(_num(r["gpu__time_duration.sum"]) for r in rows)
    for i, r in enumerate(rows):
        dur_s = _num(r["gpu__time_duration.sum"]) * 1e-9
        dram_bps = _num(r["dram__bytes.sum.per_second"])
        assert m["aiperf__dram_bytes_per_s"][i] == pytest.approx(dram_bps, rel=1e-9)
        assert k["dram_bytes"][i] == pytest.approx(dram_bps * dur_s, rel=1e-9)
        per_cycle = (_num(r["smsp__sass_thread_inst_executed_op_fadd_pred_on.sum.per_cycle_elapsed"])
                     + _num(r["smsp__sass_thread_inst_executed_op_fmul_pred_on.sum.per_cycle_elapsed"])
                     + 2 * _num(r["smsp__sass_thread_inst_executed_op_ffma_pred_on.sum.per_cycle_elapsed"]))
        fp32 = per_cycle * _num(r["smsp__cycles_elapsed.avg.per_second"])
        assert m["aiperf__fp32_flop_per_s"][i] == pytest.approx(fp32, rel=1e-9)
        assert k["grid"][i] == parse_dims(r["Grid Size"]) and k["block"][i] == parse_dims(r["Block Size"])
        assert k["registers"][i] == _num(r["launch__registers_per_thread"])
    # The nvjet GEMM ran on tensor cores, which these counters do not see: flops unknown, not ~0.
    assert k["category"][2] == "gemm" and k["flops"].isna()[2]
    assert m["aiperf__flops_source"][2].startswith("unknown")
    assert k["flops"][0] == pytest.approx(m["aiperf__fp32_flop_per_s"][0] * 42976e-9)
    assert m.attrs["units"]["gpu__time_duration.sum"] == "ns"
    assert m["device__attribute_l2_cache_size"][0] == 52_428_800
    assert res.meta["messages"][0].startswith("==WARNING==")


def test_units_are_converted_to_base():
    text = (
        '"ID","Kernel Name","gpu__time_duration.sum","dram__bytes_read.sum","dram__bytes_write.sum",'
        '"Grid Size","Block Size","sm__throughput.avg.pct_of_peak_sustained_elapsed","rate"\n'
        '"","","usecond","Mbyte","Kbyte","","","%","Gbyte/second"\n'
        '"0","[bold]k[/]","1,234.5","2.5","500","(2, 1, 1)","(128, 1, 1)","n/a","1.5"\n'
    )
    res = parse_ncu_csv_text(text)
    k, m = res.kernels, res.metrics
    assert k["name"][0] == "[bold]k[/]"
    assert k["dur_ns"][0] == 1_234_500
    assert k["dram_bytes"][0] == pytest.approx(2.5e6 + 500e3)
    assert m["rate"][0] == pytest.approx(1.5e9)
    assert np.isnan(m["sm__throughput.avg.pct_of_peak_sustained_elapsed"][0])
    assert m.attrs["base_units"]["rate"] == "byte/s"


@pytest.mark.parametrize(("unit", "factor"), [
    ("ns", 1), ("nsecond", 1), ("usecond", 1e3), ("msecond", 1e6), ("second", 1e9), ("byte", 1),
    ("Kbyte", 1e3), ("Mbyte", 1e6), ("Gbyte", 1e9), ("KiByte", 1), ("byte/s", 1),
    ("byte/second", 1), ("Tbyte/second", 1e12), ("byte/usecond", 1e6), ("Ghz", 1e9), ("%", 1),
    ("inst/cycle", 1), ("cycle/nsecond", 1e9),
])
def test_unit_factor(unit, factor):
    assert unit_factor(unit)[0] == pytest.approx(factor)


def test_number_and_dims_text():
    assert parse_number("1,980,000") == 1_980_000 and np.isnan(parse_number("n/a"))
    assert parse_dims("(1,056, 1, 1)") == (1056, 1, 1) and parse_dims("garbage") is None


@pytest.mark.parametrize(("text", "needle"), [
    ("==PROF== Connected\n==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\n",
     "NVreg_RestrictProfilingToAdminUsers"),
    ("==PROF== Connected\n==WARNING== No kernels were profiled.\n", "--kernel-name"),
    ("just some text\n", "ncu --csv --page raw"),
    ('"ID","Process ID","Kernel Name"\n"","",""\n', "no kernels"),
])
def test_known_failures_become_workbench_errors(tmp_path, text, needle):
    p = tmp_path / "ncu.csv"
    p.write_text(text)
    with pytest.raises(WorkbenchError) as err:
        load_ncu_csv(p)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_columns_give_missing_values():
    res = parse_ncu_csv_text('"ID","Kernel Name"\n"0","nvjet_x"\n"1","flash_fwd_kernel"\n')
    assert res.kernels["dur_ns"].isna().all() and res.kernels["flops"].isna().all()
    assert res.kernels["category"].tolist() == ["gemm", "attention"]


def test_ncu_rep_without_module_says_how_to_export(h100_fixtures, monkeypatch):
    if ncu_report_available():
        pytest.skip("ncu_report is installed here")
    monkeypatch.setenv("AIPERF_NCU", "/nonexistent/ncu")  # no CLI fallback either
    with pytest.raises(WorkbenchError) as err:
        load_ncu_rep(h100_fixtures / "mm_full.ncu-rep")
    assert err.value.message == "cannot read .ncu-rep: NVIDIA's ncu_report module was not found"
    assert "ncu --import" in err.value.hint and "--csv --page raw" in err.value.hint


@pytest.mark.skipif(not ncu_report_available(),
                    reason="NVIDIA's ncu_report module is not installed")
def test_ncu_rep_real_read(h100_fixtures):
    res = load_ncu_rep(h100_fixtures / "mm_full.ncu-rep")
    assert res.meta["reader"] == "ncu_report"
    assert len(res.kernels) >= 1 and res.kernels["dur_ns"].notna().all()
    assert "gpu__time_duration.sum" in res.metrics


def test_ncu_rep_reader_crash_is_one_line_with_the_export_hint(h100_fixtures, tmp_path,
                                                              monkeypatch):
    """A reader that dies by a signal (as NVIDIA's module did on the H200 box) and no ncu on
    PATH: a one-line error naming the crash, never a crashed caller."""
    import profilers.parsers.ncu_rep as ncu_rep

    fake = tmp_path / "ncu_report.py"
    fake.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(ncu_rep, "ncu_python_dirs", lambda: [tmp_path])
    monkeypatch.setenv("AIPERF_NCU", "/nonexistent/ncu")
    with pytest.raises(WorkbenchError) as err:
        load_ncu_rep(h100_fixtures / "mm_full.ncu-rep")
    assert "ncu_report crashed (signal 11)" in err.value.message
    assert "--csv --page raw" in err.value.hint


FAKE_NCU_REPORT = """
# Stand-in for NVIDIA's ncu_report (not installable here) with its documented surface and the
# trait that bit on the H200 box: as_double() of a string metric returns 0.0 instead of failing.
class IMetric:
    ValueKind_STRING, ValueKind_DOUBLE = 1, 2
    def __init__(self, value, unit): self.value, self.unit_ = value, unit
    def unit(self): return self.unit_
    def kind(self):
        return IMetric.ValueKind_STRING if isinstance(self.value, str) else IMetric.ValueKind_DOUBLE
    def metric_type(self): return 0
    def as_double(self): return 0.0 if isinstance(self.value, str) else float(self.value)
    def as_string(self): return str(self.value)
class Action:
    def __init__(self, name, metrics): self.name_, self.metrics = name, metrics
    def name(self): return self.name_
    def metric_names(self): return list(self.metrics)
    def metric_by_name(self, name): return IMetric(*self.metrics[name])
class Range:
    actions = [Action("nvjet_sm90_tst_256x128", {
        "device__attribute_display_name": ("NVIDIA H100 80GB HBM3", ""),
        "gpu__time_duration.sum": (178.5, "usecond"),
        "dram__bytes_read.sum": (130.5, "Mbyte")})]
    def num_actions(self): return len(self.actions)
    def action_by_idx(self, i): return self.actions[i]
class Context:
    def num_ranges(self): return 1
    def range_by_idx(self, i): return Range()
def load_report(path): return Context()
"""


def test_ncu_rep_string_metrics_are_read_as_strings(h100_fixtures, tmp_path, monkeypatch):
    """The device name is a string metric: read by value kind it stays a name (the roofline
    needs it), and durations / bytes keep their units."""
    import profilers.parsers.ncu_rep as ncu_rep
    from workbench.api.pipeline.analysis import device_name_of

    (tmp_path / "ncu_report.py").write_text(FAKE_NCU_REPORT)
    monkeypatch.setattr(ncu_rep, "ncu_python_dirs", lambda: [tmp_path])
    res = load_ncu_rep(h100_fixtures / "mm_full.ncu-rep")
    assert res.meta["reader"] == "ncu_report"
    assert device_name_of(res) == "NVIDIA H100 80GB HBM3"
    assert res.kernels["dur_ns"].tolist() == [178_500.0]


# ---------------------------------------------------------------- ncu's default CSV layout

LONG_HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
               '"Block Size","Grid Size","Device","CC","Section Name","Metric Name",'
               '"Metric Unit","Metric Value","Rule Name","Rule Type","Rule Description"')


def _long_row(launch: int, kernel: str, section: str, metric: str, unit: str, value: str) -> str:
    return (f'"{launch}","4242","python","h","{kernel}","1","7","(128, 1, 1)","(80, 2, 1)","0",'
            f'"9.0","{section}","{metric}","{unit}","{value}","","",""')


def test_default_layout_pivots_per_launch_with_units_per_value():
    """One row per metric per launch: it read as one kernel per metric row, all 0 ns.
    Each value has its own unit (ncu picks a readable one per value)."""
    sol, launch, mwa = "GPU Speed Of Light Throughput", "Launch Statistics", "Memory Workload Analysis"
    rows = [
        "==PROF== Connected to process 4242",
        LONG_HEADER,
        _long_row(0, "gemv_kernel", sol, "Duration", "usecond", "14,887.28"),
        _long_row(0, "gemv_kernel", sol, "DRAM Throughput", "%", "91.5"),
        _long_row(0, "gemv_kernel", mwa, "Memory Throughput", "Tbyte/second", "4.01"),
        _long_row(0, "gemv_kernel", launch, "Registers Per Thread", "register/thread", "40"),
        _long_row(0, "gemv_kernel", launch, "Static Shared Memory Per Block", "Kbyte/block", "1.02"),
        _long_row(0, "gemv_kernel", launch, "Dynamic Shared Memory Per Block", "byte/block", "0"),
        _long_row(0, "gemv_kernel", launch, "Block Size", "", "128"),
        '"0","4242","python","h","gemv_kernel","1","7","(128, 1, 1)","(80, 2, 1)","0","9.0",'
        '"SpeedOfLight","","","","SOLBottleneck","OPT","Memory is more heavily utilized"',
        _long_row(1, "flash_fwd", sol, "Duration", "msecond", "2.50"),
        _long_row(1, "flash_fwd", sol, "DRAM Throughput", "%", "12"),
        _long_row(2, "tiny", sol, "Duration", "nsecond", "1,980"),
        _long_row(3, "long", sol, "Duration", "second", "0.5"),
    ]
    res = parse_ncu_csv_text("\n".join(rows))
    k, m = res.kernels, res.metrics
    assert k["name"].astype(str).tolist() == ["gemv_kernel", "flash_fwd", "tiny", "long"]
    assert k["dur_ns"].tolist() == [14_887_280, 2_500_000, 1_980, 500_000_000]
    assert k["registers"].tolist()[0] == 40 and k["shared_mem"].tolist()[0] == 1020
    assert k["grid"].tolist()[0] == (80, 2, 1) and k["block"].tolist()[0] == (128, 1, 1)
    assert k["stream"].tolist() == [7] * 4
    # A memory throughput in bytes/s is DRAM bandwidth: bytes = rate x duration.
    assert m["dram__bytes.sum.per_second"][0] == pytest.approx(4.01e12)
    assert k["dram_bytes"][0] == pytest.approx(4.01e12 * 14_887_280e-9)
    assert m["gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed"].tolist()[:2] == [91.5, 12.0]
    assert res.meta["layout"] == "metric rows" and res.meta["notes"] == []


def test_default_layout_with_raw_metric_names():
    """`ncu --csv --metrics gpu__time_duration.sum,...`: the rows name raw metrics."""
    text = "\n".join([
        LONG_HEADER,
        _long_row(0, "saxpy", "Command line profiler metrics", "gpu__time_duration.sum", "us", "211.94"),
        _long_row(0, "saxpy", "Command line profiler metrics", "dram__bytes.sum", "Mbyte", "2,000.5"),
        _long_row(1, "saxpy", "Command line profiler metrics", "gpu__time_duration.sum", "ms", "1.205"),
        _long_row(1, "saxpy", "Command line profiler metrics", "dram__bytes.sum", "Gbyte", "n/a"),
    ])
    res = parse_ncu_csv_text(text)
    assert res.kernels["dur_ns"].tolist() == [211_940, 1_205_000]
    assert res.kernels["dram_bytes"][0] == pytest.approx(2_000.5e6)
    assert res.kernels["dram_bytes"].isna().tolist() == [False, True]


def test_default_layout_in_a_decimal_comma_locale():
    text = "\n".join([
        LONG_HEADER,
        _long_row(0, "sgemm", "Command line profiler metrics", "gpu__time_duration.sum", "ns", "117.344"),
        _long_row(0, "sgemm", "Command line profiler metrics", "dram__bytes.sum", "byte", "27.595.520"),
        _long_row(1, "sgemm", "Command line profiler metrics", "gpu__time_duration.sum", "us", "1,5"),
    ])
    res = parse_ncu_csv_text(text)
    assert res.kernels["dur_ns"].tolist() == [117_344, 1_500]
    assert res.kernels["dram_bytes"][0] == 27_595_520
    assert "decimal mark" in res.meta["notes"][0]


@pytest.mark.parametrize("layout", ["raw", "long"])
def test_without_durations_the_total_is_unknown_not_zero(layout):
    """An ncu CSV without its duration (and name) columns printed "0 ns total"."""
    from analyzers.run_analysis import analyze_tables

    if layout == "raw":
        text = '"ID","Process ID","dram__bytes.sum"\n"","","byte"\n"0","1","100"\n"1","1","200"\n'
    else:
        text = "\n".join(['"ID","Process ID","Section Name","Metric Name","Metric Unit","Metric Value"',
                          '"0","1","Command line profiler metrics","dram__bytes.sum","byte","100"',
                          '"1","1","Command line profiler metrics","dram__bytes.sum","byte","200"'])
    res = parse_ncu_csv_text(text)
    assert len(res.kernels) == 2 and res.kernels["dur_ns"].isna().all()
    assert any("no kernel duration" in n for n in res.meta["notes"])
    assert any("Kernel Name" in n for n in res.meta["notes"])
    analysis = analyze_tables("ncu_csv", res.kernels, kernel_metrics=res.metrics)
    assert analysis.kernel_total_ns is None and analysis.kind_totals() == {}
    assert analysis.categories is None
    assert any("unknown, not 0" in n for n in analysis.notes)


def test_program_output_before_the_table_is_still_an_ncu_csv(tmp_path):
    """ncu prints the profiled program's stdout before its table: the format is still told."""
    from profilers.parsers.detect import detect_format, load_artifact

    path = tmp_path / "ncu.log"
    path.write_text("2208    2048    5608    0       358.154755\n" + LONG_HEADER + "\n"
                    + _long_row(0, "k", "GPU Speed Of Light Throughput", "Duration", "ns", "406240"))
    assert detect_format(path) == "ncu_csv"
    assert load_artifact(path).kernels["dur_ns"].tolist() == [406_240]
