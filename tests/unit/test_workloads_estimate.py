"""Analytic FLOPs, bytes and memory: checked against torch's own FLOP counter and against the
published Llama-3.1-8B size."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workloads import catalog, dense, estimate
from workloads.errors import WorkbenchError

CPU = torch.device("cpu")


def built(mode):
    workload = dense.DenseWorkload()
    params = catalog.get_preset("dense", "tiny")
    params["mode"] = mode
    workload.build(CPU, torch.float32, params)
    return workload


@torch.inference_mode()
def test_decode_flops_equal_torch_flop_counter():
    workload = built("decode")
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    workload.reset()
    with FlopCounterMode(display=False) as counter:
        workload.step(inputs)
    assert workload.flops_per_step() == counter.get_total_flops()


@torch.inference_mode()
def test_prefill_flops_count_causal_half_of_the_executed_attention():
    workload = built("prefill")
    inputs = workload.make_inputs(0)
    with FlopCounterMode(display=False) as counter:
        workload.step(inputs)
    shape = workload.shape
    prompt_len, batch = shape["prompt_len"], shape["batch"]
    # Eager attention computes the full P x P scores and masks; the analytic count is the
    # useful causal half, so add back the masked pairs to match what ran.
    masked_pairs = prompt_len * prompt_len - prompt_len * (prompt_len + 1) // 2
    masked = 4 * shape["hidden"] * batch * masked_pairs * shape["layers"]
    assert workload.flops_per_step() + masked == counter.get_total_flops()


def test_llama_3_1_8b_size_and_memory():
    shape = catalog.get_preset("dense", "llama-3.1-8b")
    counts = estimate.dense_param_counts(shape)
    assert counts.total == 8_030_261_248  # Llama-3.1-8B's published parameter count
    memory = estimate.estimate_dense_memory(shape)
    assert memory.weights_bytes == 2 * counts.total  # bf16
    # K and V: 32 layers x 8 kv heads x 128 dims x 2 bytes x 2 = 128 KiB per token.
    assert estimate.kv_bytes_per_token(shape) == 131072
    assert memory.kv_cache_bytes == 131072 * 1 * 1024
    assert memory.total_bytes > memory.weights_bytes + memory.kv_cache_bytes


def test_llama_decode_bytes_are_weights_plus_kv():
    shape = catalog.get_preset("dense", "llama-3.1-8b")
    counts = estimate.dense_param_counts(shape)
    context = shape["prompt_len"] + 1
    non_embedding = (counts.total - counts.embedding) * 2
    expected = non_embedding + 4096 * 2 + 131072 * (context + 1)
    assert estimate.decode_bytes(shape, context) == expected
    # ~15 GB a step: an H100 at 3.35 TB/s cannot decode faster than ~4.6 ms/step at batch 1.
    assert 14.9e9 < expected < 15.1e9


def test_estimate_for_preset_applies_overrides():
    base = estimate.estimate_for_preset("llama-3.1-8b")
    bigger = estimate.estimate_for_preset("llama-3.1-8b", {"batch": 8})
    assert bigger.kv_cache_bytes == 8 * base.kv_cache_bytes
    assert bigger.weights_bytes == base.weights_bytes


def test_unsupported_dtype_and_bad_overrides_are_workbench_errors():
    with pytest.raises(WorkbenchError, match="unsupported dtype"):
        estimate.dtype_bytes("int4")
    with pytest.raises(WorkbenchError, match="cannot estimate memory"):
        estimate.estimate_for_preset("tiny", {"batch": "many"})


def test_torch_free_modules_do_not_import_torch():
    code = ("import sys; import workloads, workloads.catalog, workloads.spec, "
            "workloads.protocol, workloads.errors, workloads.estimate; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'pandas' not in sys.modules, 'pandas imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert done.returncode == 0, done.stderr
