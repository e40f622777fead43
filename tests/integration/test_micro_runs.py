"""Every micro-workload's tiny preset as a real child run (``python -m workloads.run``) on the
CPU: parity against its baseline variant asserted, the facts it reports present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workloads import catalog
from workloads.protocol import parse_event

REPO = Path(__file__).resolve().parents[2]


def run_child(tmp_path: Path, workload: str, **params):
    spec = {"workload": workload, "preset": "tiny", "layers": ["L0"], "repeat": 2,
            "warmup": 1, "device": "cpu", "params": params}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    # one thread: tiny shapes gain nothing from more, and a busy 2-core CI box loses a lot
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "workloads.run", "--spec", str(spec_path), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    events = [e for e in map(parse_event, done.stdout.splitlines()) if e]
    return done, events, json.loads((out / "result.json").read_text())


def test_every_micro_workload_is_in_the_catalog() -> None:
    kinds = {info.name: info.kind for info in catalog.list_workloads()}
    for name in ("attention", "paged", "gemm", "specdec", "serve"):
        assert kinds[name] == "micro" and "tiny" in catalog.get_workload(name).presets
    assert kinds["gpt4-arch"] == "analytic"


@pytest.mark.parametrize("workload,params,fact", [
    ("attention", {"variant": "sdpa", "mask": "sliding"}, "mask_density"),
    ("paged", {}, "kv_bytes_paged"),
    ("gemm", {"variant": "int8_wo"}, "error_vs_fp64"),
    ("specdec", {"k_sweep": "2", "sweep_repeats": 1}, "k_sweep"),
])
def test_micro_workload_child_run(tmp_path: Path, workload: str, params: dict,
                                  fact: str) -> None:
    done, events, result = run_child(tmp_path, workload, **params)
    assert done.returncode == 0, done.stderr[-2000:]
    assert result["status"] == "ok" and events[-1]["status"] == "ok"
    parity = result["parity"]
    assert parity["ok"] and parity["reference"] == "L0" and parity["tokens_compared"] > 0
    extra = result["details"]
    expected = params.get("variant") or catalog.get_preset(workload, "tiny")["variant"]
    assert extra["variant"] == expected
    assert extra["baseline"] and extra[fact] is not None  # facts gathered after running
    assert result["metrics"]["latency_ms"]["n"] == 2
    assert result["metrics"]["step"] == extra["variant"]


def test_gpu_only_variant_fails_as_a_user_error(tmp_path: Path) -> None:
    done, events, result = run_child(tmp_path, "gemm", variant="fp8_row")
    if result["status"] == "ok":
        pytest.skip("this box has an fp8-capable GPU")
    assert done.returncode == 1 and result["error_type"] == "WorkbenchError"
    assert "compute capability >= 9.0" in result["error"]
