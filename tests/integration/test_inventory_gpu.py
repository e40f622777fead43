"""On a GPU: a torch-profiler run stores its operation inventory and its report costs (nearly)
every kernel from it — eager, CUDA-graphed, compiled with the Triton GEMV, and FP8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.gpu
@pytest.mark.parametrize("layers", ["L0", "L0-L4", "L0-L4,L5,L5-gemv", "L0-L4,L5,L5-fp8"])
def test_torch_run_costs_its_kernels_from_the_inventory(tmp_path, layers):
    from sessions.store import SessionStore
    from workbench.api.pipeline.analysis import load_run_analysis

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIPERF_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "--workload", "dense", "--preset",
         "small", "--device", "cuda", "--profiler", "torch", "--layers", layers,
         "--param", "compile_mode=default"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    store = SessionStore(home)
    (row,) = store.list()
    record = store.get(row.id)
    inventory = record.details["inventory"]
    assert "error" not in inventory, inventory
    analysis = load_run_analysis(store, record)
    step = analysis.roofline_aggregate
    assert step.flops_time_coverage >= 0.95 and step.bytes_time_coverage >= 0.95, analysis.notes
    sources = set(analysis.kernels["cost_source"].dropna().astype(str))
    assert "inventory" in sources, analysis.notes
