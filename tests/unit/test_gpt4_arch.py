"""The GPT-4-scale estimator: counts by hand on a small architecture, layout rules, and the
CLI labels its output an estimate without loading torch."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from workloads.errors import WorkbenchError
from workloads.gpt4_arch import (
    GIB,
    Layout,
    MoEArch,
    arch_from_params,
    estimate,
    minimum_pipeline,
    scenario_rows,
)

ROOT = Path(__file__).resolve().parents[2]
SMALL = MoEArch(layers=4, hidden=64, heads=4, kv_heads=2, head_dim=16, experts=4, top_k=2,
                expert_ff=128, mlp_matrices=3, vocab=100)


def test_parameter_counts_by_hand() -> None:
    result = estimate(SMALL, Layout(tp=1, pp=1, ep=1, cp=1, precision="bf16",
                                    kv_precision="bf16", context=32, gpu_mem_gib=1.0))
    attention = 64 * (2 * 64 + 2 * 32) + 2 * 64  # q,o 64x64; k,v 64x32; two norms
    expert = 3 * 64 * 128
    router = 64 * 4
    assert result.params_total == 4 * (attention + router + 4 * expert) + 2 * 100 * 64
    assert result.params_active == 4 * (attention + router + 2 * expert) + 2 * 100 * 64
    assert result.weights_bytes_total == 2 * result.params_total
    assert result.kv_bytes_per_token == 2 * 4 * 32 * 2  # K,V x layers x kv_dim x bf16
    assert result.kv_bytes_total == result.kv_bytes_per_token * 32


def test_default_architecture_is_the_rumored_scale() -> None:
    result = estimate(MoEArch(), Layout())
    assert 1.7e12 < result.params_total < 1.9e12
    assert 2.0e11 < result.params_active < 3.0e11


def test_parallelism_divides_what_it_should() -> None:
    base = Layout(tp=1, pp=1, ep=1, cp=1, context=1024, batch=2, gpu_mem_gib=80)
    one = estimate(SMALL, base)
    pp2 = estimate(SMALL, replace(base, pp=2))
    cp2 = estimate(SMALL, replace(base, tp=1, cp=2, ep=2))
    assert pp2.kv_per_gpu == pytest.approx(one.kv_per_gpu / 2)
    assert cp2.kv_per_gpu == pytest.approx(one.kv_per_gpu / 2) and cp2.gpus == 2
    tp4 = estimate(SMALL, replace(base, tp=4))  # 2 KV heads: TP beyond 2 replicates them
    assert tp4.kv_per_gpu == pytest.approx(one.kv_per_gpu / 2)


def test_minimum_pipeline_is_the_smallest_that_fits() -> None:
    layout = Layout(tp=8, ep=8, cp=1, precision="fp8", kv_precision="fp8", context=8192)
    pp, result = minimum_pipeline(MoEArch(), layout)
    assert pp is not None and result is not None and result.fits
    assert not estimate(MoEArch(), replace(layout, pp=pp - 1)).fits
    assert result.total_per_gpu <= 80 * GIB * 0.9


def test_long_context_needs_more_gpus_or_context_parallelism() -> None:
    rows = {(r["context"], r["precision"], r["cp"]): r for r in scenario_rows(MoEArch(),
                                                                               Layout())}
    assert rows[(131072, "bf16", 1)]["min_gpus"] > rows[(8192, "bf16", 1)]["min_gpus"]
    assert rows[(131072, "fp8", 8)]["per_gpu_gib"] < rows[(131072, "fp8", 1)]["per_gpu_gib"]


def test_bad_layouts_and_params_are_user_errors() -> None:
    with pytest.raises(WorkbenchError, match="ep"):
        estimate(SMALL, Layout(tp=2, ep=3, cp=1))
    with pytest.raises(WorkbenchError, match="precision"):
        estimate(SMALL, Layout(tp=1, ep=1, precision="int3"))
    with pytest.raises(WorkbenchError, match="unknown architecture"):
        arch_from_params({"depth": 3})
    with pytest.raises(WorkbenchError, match="top_k"):
        arch_from_params({"experts": 2, "top_k": 4})


def test_cli_prints_a_labelled_estimate_without_torch() -> None:
    code = ("import sys, json\nfrom workbench.cli import main\n"
            "rc = main(['gpt4-arch', '--json', '--context', '8192'])\n"
            "print('@@', json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    status = json.loads(out.rsplit("@@", 1)[1])
    payload = json.loads(out.rsplit("@@", 1)[0])
    assert status == {"rc": 0, "torch": False}
    assert payload["label"].startswith("ESTIMATE")
    assert payload["min_pp"] >= 1 and payload["estimate"]["fits"]
    text = subprocess.run([sys.executable, "-m", "workbench.cli", "gpt4-arch"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert text.startswith("ESTIMATE") and "minimum GPUs" in text and "131,072" in text
