"""`aiperf-workbench ladder` for real on the CPU (tiny preset): one session per step, GPU-only
layers shown as not applied, the parity guard at real tolerances, the Markdown export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIPERF_HOME": str(tmp_path / "home"),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_ladder_on_cpu_tiny(tmp_path):
    export = tmp_path / "ladder.md"
    done = run_cli(tmp_path, "ladder", "--preset", "tiny", "--device", "cpu", "--repeat", "3",
                   "--warmup", "1", "--quiet", "--export", str(export), "--layers-sets",
                   "L0;L0,L2;L0,L2,L4,L5;L0,L2,L3,L6-paged,L6-fp8kv,L6-spec")
    assert done.returncode == 0, done.stderr
    assert "memory estimate:" in done.stderr
    text = export.read_text()
    assert text == done.stdout
    assert text.startswith("# Optimization ladder — dense / tiny")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| L0", "| +L2", "| +L4+L5", "| +L3+L6-fp8kv+L6-paged+L6-spec"]
    assert not any("PARITY FAIL" in line for line in lines) and text.count("| ok (rel") == 4
    assert "- L4: not applied — needs a CUDA GPU" in text
    assert "- L5: not applied — needs a CUDA GPU" in text
    assert "- L6-spec: draft = first 1 of 2 layers" in text

    listed = run_cli(tmp_path, "sessions", "list", "--limit", "10")
    assert listed.returncode == 0 and listed.stdout.count("dense") == 4
    results = sorted((tmp_path / "home").rglob("result.json"))
    assert len(results) == 4
    docs = [json.loads(p.read_text()) for p in results]
    spec_run = next(d for d in docs if "L6-spec" in d["spec"]["layers"])
    assert spec_run["details"]["speculative"]["matches_greedy"] is True
    assert 0.0 <= spec_run["details"]["speculative"]["acceptance_rate"] <= 1.0
    assert spec_run["parity"]["precision"] == "fp8" and spec_run["parity"]["ok"]
    graphs_run = next(d for d in docs if "L4" in d["spec"]["layers"])
    assert {o["name"]: o["applied"] for o in graphs_run["layers_applied"]} == {
        "L0": True, "L2": True, "L4": False, "L5": False}
    assert graphs_run["parity"]["max_rel_err"] < graphs_run["parity"]["tolerance"]["max_rel_err"]


def test_plain_run_with_a_gpu_layer_on_cpu_is_a_one_line_error(tmp_path):
    done = run_cli(tmp_path, "run", "--preset", "tiny", "--device", "cpu", "--layers", "L0,L4",
                   "--quiet")
    assert done.returncode == 2
    assert "L4" in done.stdout + done.stderr and "needs a CUDA GPU" in done.stdout + done.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ladder_on_gpu_small_all_layers_keep_parity(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIPERF_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "ladder", "--preset", "small", "--device",
         "cuda", "--repeat", "5", "--quiet", "--param", "compile_mode=default",
         "--layers-sets", "L0;L0-L4;L0-L4,L5,L5-gemv;L0-L4,L5,L5-fp8;"
         "L0-L4,L5,L5-gemv,L6-paged,L6-fp8kv,L6-spec"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 7 and not any("PARITY FAIL" in line for line in rows), done.stdout
    assert "not applied" not in done.stdout, done.stdout
