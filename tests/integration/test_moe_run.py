"""The MoE workloads end to end on CPU: real child processes through the CLI, router health in
result.json, the run summary and the Markdown report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_moe_tiny_prints_router_health_and_targets(tmp_path: Path) -> None:
    home, report = tmp_path / "home", tmp_path / "moe.md"
    proc = cli(home, "run", "--workload", "moe", "--preset", "tiny", "--repeat", "2",
               "--warmup", "1", "--quiet", "--export", str(report))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    for needle in ("router health (64 experts, top-6", "balance loss", "router entropy",
                   "tokens per expert min", "Gini", "target < 0.2", "load std/mean",
                   "targets (Gini, load spread):"):
        assert needle in out, (needle, out)
    run_id = out.split()[1].rstrip(":")
    result = json.loads((home / "runs" / run_id / "result.json").read_text())
    router = result["details"]["router"]
    assert router["experts"] == 64 and router["top_k"] == 6 and router["moe_layers"] == 2
    # 2 x 32 prompt tokens + 3 decode steps of 2 tokens, every one routed once per layer
    assert router["tokens_routed"] == 2 * 32 + 3 * 2
    assert 0 <= router["gini"] < 1 and router["router_entropy"] > 0
    verdict = "met" if router["targets_met"] else "NOT met"
    assert f"targets (Gini, load spread): {verdict}" in out
    text = report.read_text()
    assert "## Router health" in text and "Gini" in text and verdict in text


def test_gptoss_tiny_with_all_moe_layers_keeps_parity(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = cli(home, "run", "--workload", "gptoss", "--preset", "tiny", "--layers",
               "L0,L1,L5-moe-fp8,L6-moe-grouped", "--repeat", "2", "--warmup", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "parity vs L0: ok" in proc.stdout
    run_id = proc.stdout.split()[1].rstrip(":")
    result = json.loads((home / "runs" / run_id / "result.json").read_text())
    assert result["parity"]["ok"] and result["parity"]["precision"] == "fp8"
    assert [layer["name"] for layer in result["layers_applied"]] == [
        "L0", "L1", "L5-moe-fp8", "L6-moe-grouped"]
    assert result["details"]["moe_impl"]["dispatch"] == "sorted"
    assert result["details"]["router"]["experts"] == 32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_moe_full_preset_on_gpu_with_moe_layers(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--workload", "moe", "--preset", "full", "--device", "cuda",
               "--layers", "L0,L1,L5-moe-fp8,L6-moe-grouped", "--repeat", "5", "--quiet",
               "--no-telemetry")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "parity vs L0: ok" in proc.stdout and "targets (Gini, load spread):" in proc.stdout


def test_a_range_says_which_layers_it_skips_and_why(tmp_path: Path) -> None:
    """`--layers L0-L6` on gpt-oss: the dense-only layers of the range are named on stderr,
    recorded as not applied with the reason, and listed in the report's Layers table; the
    layers that apply (L2, L3 now among them) run and keep parity."""
    home, report = tmp_path / "home", tmp_path / "gptoss.md"
    proc = cli(home, "run", "--workload", "gptoss", "--preset", "tiny", "--layers", "L0-L6",
               "--device", "cpu", "--param", "unmet_layers=skip", "--repeat", "2",
               "--warmup", "1", "--quiet", "--export", str(report))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for name in ("L5-fp8", "L5-gemv", "L6-fp8kv", "L6-paged", "L6-spec"):
        assert (f"layer {name} skipped: left out of L0-L6: applies to dense only, not gptoss"
                in proc.stderr), proc.stderr
    assert "parity vs L0: ok" in proc.stdout
    run_id = proc.stdout.split()[1].rstrip(":")
    result = json.loads((home / "runs" / run_id / "result.json").read_text())
    layers = {layer["name"]: layer for layer in result["layers_applied"]}
    assert [name for name, layer in layers.items() if layer["applied"]] == [
        "L0", "L1", "L2", "L3", "L5-moe-fp8", "L6-moe-grouped"]
    assert layers["L4"]["reason"].startswith("needs a CUDA GPU")  # unmet here, not skipped
    assert layers["L6-spec"]["reason"] == ("left out of L0-L6: applies to dense only, not "
                                           "gptoss")
    assert result["spec"]["skipped_layers"]["L5-gemv"].startswith("left out of L0-L6")
    text = report.read_text()
    assert "| L6-paged | no | left out of L0-L6: applies to dense only, not gptoss |" in text
    assert "| L3 | yes | SDPA math backend on CPU" in text


def test_moe_ladder_runs_every_layer_and_names_what_a_range_skips(tmp_path: Path) -> None:
    export = tmp_path / "ladder.md"
    proc = cli(tmp_path / "home", "ladder", "--workload", "moe", "--preset", "tiny",
               "--device", "cpu", "--layers-sets", "L0;L0-L3;L0-L6", "--repeat", "2",
               "--warmup", "1", "--quiet", "--export", str(export))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "layer L6-paged skipped: left out of L0-L6: applies to dense only, not moe" \
        in proc.stderr
    text = export.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")][2:]
    assert [row.split(" | ")[0] for row in rows] == ["| L0", "| +L1+L2+L3",
                                                    "| +L4+L5+L5-moe-fp8+L6-moe-grouped"]
    assert not any("PARITY FAIL" in row for row in rows)
    assert "- L6-spec: not applied — left out of L0-L6: applies to dense only, not moe" in text
    assert "- L4: not applied — needs a CUDA GPU" in text
    assert "- L3: SDPA math backend on CPU" in text
