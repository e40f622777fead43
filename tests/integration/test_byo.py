"""Bring your own model end to end on CPU: the README's example target as a stored session,
a checkpoint run, a target that fails (one line, log kept), plugin listing, and the memory
profile (peak RSS by phase on CPU; the allocator replay on a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _record(home: Path, run_id: str) -> dict:
    return json.loads((home / "runs" / run_id / "record.json").read_text())


def _session_id(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.split("session ", 1)[1].split(":", 1)[0]


def test_readme_example_target_runs_and_is_a_session(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    command = next(line.strip() for line in readme.splitlines()
                   if line.strip().startswith("aiperf-workbench run --target examples/"))
    args = command.split()[1:]
    proc = cli(tmp_path, *args, "--no-telemetry", "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = _record(tmp_path, _session_id(proc))
    assert record["status"] == "ok" and record["spec"]["workload"] == "my_target"
    assert record["spec"]["target"] == f"{ROOT / 'examples' / 'my_target.py'}:build"
    assert record["metrics"]["tokens_per_s"] > 0 and record["parity"]["ok"] is True
    assert [layer["name"] for layer in record["layers_applied"]] == ["L0", "L1"]
    listing = cli(tmp_path, "sessions", "list").stdout
    assert "my_target" in listing and "ok" in listing


def test_failing_target_is_one_line_and_keeps_the_log(tmp_path: Path) -> None:
    target = tmp_path / "broken.py"
    target.write_text("import torch\nfrom examples_that_do_not_exist import Model\n")
    proc = cli(tmp_path / "home", "run", "--target", f"{target}:build", "--device", "cpu",
               "--no-telemetry", "--quiet")
    assert proc.returncode == 1
    summary = proc.stdout.splitlines()[0]
    assert "failed" in summary and "ModuleNotFoundError" in summary and "broken.py" in summary
    run_dir = tmp_path / "home" / "runs" / _session_id(proc)
    log = (run_dir / "run.log").read_text()
    assert "Traceback" in log and "examples_that_do_not_exist" in log


def test_checkpoint_run_uses_the_checkpoint_shape(tmp_path: Path) -> None:
    import torch

    from workloads import checkpoint
    from workloads.catalog import get_preset
    from workloads.dense import DenseDecoder, resolve_shape

    shape = resolve_shape({**get_preset("dense", "tiny"), "hidden": 96, "heads": 6,
                           "kv_heads": 3, "vocab": 400})
    model = DenseDecoder(shape, torch.device("cpu"), torch.float32, seed=3)
    checkpoint.write_checkpoint(model, shape, tmp_path / "ckpt", max_shard_bytes=300_000)
    proc = cli(tmp_path / "home", "run", "--checkpoint", str(tmp_path / "ckpt"), "--device",
               "cpu", "--no-telemetry", "--quiet", "--layers", "L0,L1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = _record(tmp_path / "home", _session_id(proc))
    assert record["details"]["shape"]["hidden"] == 96
    assert record["details"]["checkpoint"]["tensors"] == len(model.state_dict())
    missing = cli(tmp_path / "home", "run", "--checkpoint", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_plugin_workloads_are_listed(tmp_path: Path) -> None:
    info = tmp_path / "byo_listed-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: byo-listed\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[aiperf_workbench.workloads]\nmy-llm = my_llm.workload:build\n")
    proc = cli(tmp_path, "workloads", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "my-llm" in proc.stdout and "my_llm.workload:build" in proc.stdout


def test_memory_profile_on_cpu_reports_peak_rss_by_phase(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--preset", "tiny", "--profiler", "memory", "--device", "cpu",
               "--no-telemetry", "--quiet", "--param", "max_seq=512")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    profile = _record(tmp_path, _session_id(proc))["details"]["memory_profile"]
    phases = {p["phase"]: p for p in profile["phases"]}
    assert list(phases) == ["build", "reference", "parity", "prepare", "warmup", "measure"]
    assert all(p["peak_bytes"] >= p["start_bytes"] > 0 for p in phases.values())
    # tiny: 524,928 fp32 params; KV cache 2 layers x K,V x [2, 2, 512, 32] fp32
    assert profile["at_peak"]["weights"] == 524_928 * 4
    assert profile["at_peak"]["kv_cache"] == 2 * 2 * (2 * 2 * 512 * 32) * 4
    assert profile["at_peak"]["activations"] is not None
    assert profile["at_peak"]["workspace"] is None  # n/a on CPU, never 0


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_memory_profile_accounts_for_the_8b_weights_on_gpu(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--preset", "llama-3.1-8b", "--profiler", "memory",
               "--device", "cuda", "--no-telemetry", "--quiet", "--repeat", "3",
               "--new-tokens", "8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = _record(tmp_path, _session_id(proc))
    profile = record["details"]["memory_profile"]
    weights = 16.06e9  # 8.03e9 params in bf16
    assert abs(profile["at_peak"]["weights"] / weights - 1) < 0.01, profile["at_peak"]
    assert abs(profile["weights_bytes"] / weights - 1) < 0.01
    assert profile["complete"] is True
    assert profile["at_peak"]["kv_cache"] == 32 * 2 * (1 * 8 * 1024 * 128) * 2
    assert profile["at_peak"]["activations"] > 0
    assert profile["fragmentation"]["reserved_bytes"] >= profile["peak_bytes"] * 0.5
    assert profile["top_sites"] and (tmp_path / "runs" / record["id"] /
                                     "memory_snapshot.pickle").is_file()
    phases = {p["phase"]: p for p in profile["phases"]}
    assert phases["build"]["peak_bytes"] >= weights
    print(json.dumps(profile["at_peak"]), json.dumps(profile["top_sites"][:5]))


def test_allocator_replay_attributes_the_measured_peak() -> None:
    """The CUDA replay on a trace in torch's snapshot format: markers excluded, blocks live at
    the measured peak split into weights / KV cache / activations / workspace."""
    from workloads.memory_profile import MARKER_BYTES, cuda_summary

    frames = [{"filename": "/venv/torch/nn/functional.py", "line": 1, "name": "linear"},
              {"filename": "/w/workloads/dense.py", "line": 9, "name": "forward"}]
    marker = [{"action": "alloc", "addr": 900, "size": MARKER_BYTES, "frames": []},
              {"action": "free_completed", "addr": 900, "size": MARKER_BYTES}]
    trace = [*marker,
             {"action": "alloc", "addr": 0, "size": 100, "frames": frames},  # weights
             {"action": "alloc", "addr": 100, "size": 50, "frames": frames},  # KV cache
             {"action": "alloc", "addr": 150, "size": 20, "frames": frames},  # workspace
             *marker,
             {"action": "alloc", "addr": 200, "size": 30, "frames": frames},  # activation
             {"action": "free_completed", "addr": 200, "size": 30}]
    blocks = [{"size": 100, "state": "active_allocated"}, {"size": 50, "state": "active_allocated"},
              {"size": 20, "state": "active_allocated"}]
    snapshot = {"segments": [{"device": 0, "address": 0, "total_size": 2048, "blocks": blocks}],
                "device_traces": [trace]}
    summary = cuda_summary(snapshot, [900, 900], ["build", "measure"], [(0, 100)], [(100, 50)])
    assert summary["complete"] is True
    assert [(p["phase"], p["peak_bytes"]) for p in summary["phases"]] == \
        [("build", 170), ("measure", 200)]
    assert summary["at_peak"] == {"weights": 100, "kv_cache": 50, "activations": 30,
                                  "workspace": 20}
    assert summary["top_sites"][0]["site"] == "dense.py:9 forward"
    assert summary["fragmentation"]["fraction_unused"] == pytest.approx(1 - 170 / 2048)
