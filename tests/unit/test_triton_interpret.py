"""The Triton kernels (decode attention, RoPE + KV write, RMSNorm, SwiGLU, GEMV modes with the
norm and residual fused)
in Triton's interpreter on the CPU, against torch references and a float64 SDPA oracle.

The checks run in one child process started with TRITON_INTERPRET=1
(tests/unit/triton_interpret_checks.py): the interpreter is chosen when a kernel is defined,
for the whole process. Skipped where triton is not installed (CI); the GPU versions of these
checks are in test_decode_kernels_gpu.py. Tolerances: the interpreter truncates downcasts
(the GPU rounds), so bf16 results may be one bf16 ulp off per rounding; the kernels' attention
rounds probabilities to bf16 before P @ V, as flash attention does (rel. error ~5e-3 against
float64, within the bf16 parity bound of 1e-2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workloads.layers.triton_support import has_triton

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not has_triton(), reason="triton is not installed")

BF16_ATTENTION_REL = 1e-2


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.unit.triton_interpret_checks"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def result(results: dict[str, Any], name: str) -> dict[str, Any]:
    entry = results[name]
    assert "error" not in entry, entry.get("trace") or entry["error"]
    return entry


@pytest.mark.parametrize("name", [
    "decode_static_gqa4_split", "decode_static_mha_one_split",
    "decode_static_gqa8_auto_splits_position_zero", "decode_paged_fp8",
    "decode_paged_bf16_window", "decode_more_splits_than_blocks"])
def test_decode_attention_matches_float64_sdpa(results, name):
    entry = result(results, name)
    assert entry["finite"]
    assert entry["rel_kernel"] < BF16_ATTENTION_REL
    assert entry["rel_reference"] < BF16_ATTENTION_REL


@pytest.mark.parametrize("name", ["rope_kv_static_bf16", "rope_kv_paged_fp8"])
def test_rope_kv_write_matches_the_reference(results, name):
    entry = result(results, name)
    assert entry["q_ulps"] <= 1.0 and entry["k_close"] and entry["v_equal"]
    # one token of each of 2 KV heads in each of 2 sequences, at the same slots
    assert entry["same_slots_written"] and entry["slots_written"] == 4


def test_rms_norm_matches_the_model_norm(results):
    entry = result(results, "rms_norm_rows")
    assert entry["plain_ulps"] <= 1.0
    assert entry["weighted_ulps"] <= 3.0  # two roundings


def test_swiglu_matches_silu_times_up(results):
    entry = result(results, "swiglu_rows")
    assert entry["ulps"] <= 3.0 and entry["shape"] == [2, 1, 1500]


@pytest.mark.parametrize("name", ["gemv_bf16_fma", "gemv_bf16_norm_and_residual", "gemv_fp8_fma",
                                  "gemv_fp8_packed_f16", "gemv_fp8_packed_f16_norm_and_residual",
                                  "gemv_fp8_packed_f16_norm_of_a_large_residual_stream"])
def test_gemv_modes_match_float64(results, name):
    entry = result(results, name)
    assert entry["rel"] < 1e-2 and entry["rel_reference"] < 1e-2
