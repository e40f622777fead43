"""Breakdowns: exact totals on the real H100 trace and on synthetic tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analyzers.breakdown import (
    category_breakdown,
    kernel_breakdown,
    op_breakdown,
    stream_breakdown,
)
from profilers.parsers.kernel_table import make_kernel_table


def _raw_gpu_sum_ns(path) -> int:
    """Raw sum of GPU activity durations in the trace, computed independently with json."""
    events = json.loads(path.read_text())["traceEvents"]
    return sum(round(e["dur"] * 1000) for e in events
               if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))


@pytest.fixture(scope="module")
def trace_kernels(h100_fixtures):
    kineto = pytest.importorskip("profilers.parsers.kineto")
    return kineto.load_kineto(h100_fixtures / "torch_trace.json").kernels


def test_fixture_totals_equal_raw_sum(trace_kernels, h100_fixtures):
    raw = _raw_gpu_sum_ns(h100_fixtures / "torch_trace.json")
    for frame in (category_breakdown(trace_kernels), kernel_breakdown(trace_kernels),
                  op_breakdown(trace_kernels), stream_breakdown(trace_kernels)):
        assert int(frame["total_ns"].sum()) == raw
        assert frame["total_ns"].dtype == np.int64
        assert frame["share"].sum() == pytest.approx(1.0)


def test_fixture_categories(trace_kernels):
    cats = category_breakdown(trace_kernels).set_index("category")
    # The three 1.4 ms nvjet GEMMs dominate; cuDNN SDPA is attention.
    assert cats.index[0] == "gemm"
    assert cats.loc["attention", "count"] == 3
    assert cats.loc["memset", "count"] == 8
    kernels = kernel_breakdown(trace_kernels, top=3)
    assert len(kernels) == 3
    assert kernels.iloc[0]["name"].startswith("nvjet_sm90_tst_320x128")
    assert kernels.iloc[0]["count"] == 3
    assert kernels.iloc[0]["p50_ns"] == pytest.approx(1395896)
    ops = op_breakdown(trace_kernels).set_index("op_name")
    assert ops.loc["aten::mm", "kernels"] == 2  # memset + nvjet GEMM
    streams = stream_breakdown(trace_kernels)
    assert set(streams["stream"].astype(int)) == {7, 14}


def test_synthetic_exact_and_missing_values():
    kt = make_kernel_table({
        "name": ["nvjet_a", "nvjet_a", "vectorized_elementwise_kernel", "Memset (Device)"],
        "kind": ["kernel", "kernel", "kernel", "memset"],
        "dur_ns": [10, 30, 5, None],
        "stream": [7, 7, 7, None], "device": [0, 0, 0, 0],
        "op_name": ["aten::mm", "aten::mm", None, None],
    }, source="torch")
    cats = category_breakdown(kt).set_index("category")
    assert cats.loc["gemm", "total_ns"] == 40
    assert cats["total_ns"].sum() == 45
    kernels = kernel_breakdown(kt).set_index("name")
    assert kernels.loc["nvjet_a", "mean_ns"] == 20
    assert kernels.loc["nvjet_a", "p50_ns"] == 20
    assert np.isnan(kernels.loc["Memset (Device)", "p50_ns"])  # unknown, not 0
    ops = op_breakdown(kt)
    assert ops["op_name"].tolist() == ["aten::mm", None]
    streams = stream_breakdown(kt)
    assert streams["stream"].isna().sum() == 1


def test_empty_table():
    kt = make_kernel_table({"name": [], "dur_ns": []}, source="torch")
    assert len(category_breakdown(kt)) == 0
    assert len(kernel_breakdown(kt)) == 0


@pytest.mark.slow
def test_two_million_rows_totals_stay_exact():
    n = 2_000_000
    rng = np.random.default_rng(0)
    names = pd.Categorical.from_codes(rng.integers(0, 300, n),
                                      categories=[f"triton_poi_{i}" for i in range(300)])
    kt = pd.DataFrame({
        "name": names, "category": pd.Categorical(["elementwise"] * 1 + ["gemm"])[rng.integers(0, 2, n)],
        "dur_ns": pd.array(rng.integers(1_000, 50_000, n), dtype="Int64"),
        "stream": pd.array(rng.integers(0, 4, n), dtype="Int64"),
        "device": pd.array(np.zeros(n, dtype=np.int64), dtype="Int64"),
    })
    # Speed is a benchmark's business (benchmarks/trace_engine.py); here: exact on a big table.
    total = int(category_breakdown(kt)["total_ns"].sum())
    assert int(stream_breakdown(kt)["total_ns"].sum()) == total
    assert total == int(kt["dur_ns"].sum())
