"""The fused decode-time expert GEMV (L6-moe-grouped's CUDA decode path) without a GPU:
its kernels in Triton's interpreter against a float64 oracle (a child process with
TRITON_INTERPRET=1: tests/unit/moe_gemv_interpret.py), the torch reference the CPU runs, and
the kernels compiled for sm_90 with the ptxas / cuobjdump of the triton wheel (no spills,
16-byte evict-first weight loads). Skipped where triton is not installed. Tolerances: bf16
within the parity bound 1e-2 (the interpreter truncates downcasts where the GPU rounds, so it
sits ~3x above the reference); fp32 at 1e-6."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from workloads.layers import moe_experts as mx
from workloads.layers import moe_gemv as mg

ROOT = Path(__file__).resolve().parents[2]
HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")


def test_reference_is_the_sorted_dispatch_function():
    g = torch.Generator().manual_seed(0)
    tokens, top_k, experts, hidden, inter = 5, 4, 16, 32, 24
    x = torch.randn(tokens, hidden, generator=g)
    idx = torch.rand(tokens, experts, generator=g).topk(top_k, -1).indices
    gate = torch.rand(tokens, top_k, generator=g)
    ew = mx.ExpertWeights(torch.randn(experts, 2 * inter, hidden, generator=g) / 6,
                          torch.randn(experts, hidden, inter, generator=g) / 5,
                          torch.randn(experts, 2 * inter, generator=g),
                          torch.randn(experts, hidden, generator=g), "gptoss")
    want = mx.experts_sorted(x, idx, gate, ew, "bmm")
    got = mg.experts_gemv(x, idx, gate, ew)  # the registered op: its CPU body
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def interpreted() -> dict[str, Any]:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.unit.moe_gemv_interpret"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_triton
@pytest.mark.parametrize("name,bound", [("bf16_gptoss_bias_small_blocks", 1e-2),
                                        ("fp32_swiglu_tight", 1e-6),
                                        ("fp8_swiglu_no_bias", 1e-2),
                                        ("fp8_gptoss_bias", 1e-2),
                                        ("default_config_batch1", 1e-2)])
def test_kernels_match_float64_in_the_interpreter(interpreted, name, bound):
    entry = interpreted[name]
    assert "error" not in entry, entry.get("trace")
    assert entry["finite"] and entry["rel"] < bound and entry["rel_reference"] < bound
    if name.startswith("bf16"):
        assert entry["experts_shared_by_tokens"]  # two tokens read one expert's rows


def compile_sm90(fn: Any, types: dict[str, str], constexprs: dict[str, Any], warps: int,
                 stages: int, tmp_path: Path) -> tuple[dict[str, int], str]:
    """(resource usage, SASS) of the kernel built for sm_90, pointers 16-byte aligned and
    integer args divisible by 16 as the launcher specializes them."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = fn.arg_names
    signature = {a: "constexpr" if a in constexprs else types.get(a, "i32") for a in names}
    aligned = [a for a in names if a not in constexprs]
    source = ASTSource(fn=fn, signature=signature,
                       constexprs={(names.index(k),): v for k, v in constexprs.items()},
                       attrs={(names.index(a),): [["tt.divisibility", 16]] for a in aligned})
    kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                            options={"num_warps": warps, "num_stages": stages})
    cubin = tmp_path / "kernel.cubin"
    cubin.write_bytes(kernel.asm["cubin"])
    tools = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    usage = subprocess.run([str(tools / "cuobjdump"), "-res-usage", str(cubin)],
                           capture_output=True, text=True, check=True).stdout
    sass = subprocess.run([str(tools / "cuobjdump"), "--dump-sass", str(cubin)],
                          capture_output=True, text=True, check=True).stdout
    resources = {k: int(v) for k, v in re.findall(r"(REG|STACK|LOCAL):(\d+)", usage)}
    return resources, sass


@needs_triton
@pytest.mark.slow
@pytest.mark.parametrize("fp8", [False, True])
def test_default_configs_compile_for_sm90_without_spills(tmp_path, fp8):
    from workloads.layers import moe_gemv_kernels as kernels

    cfg = mg.DEFAULT_CONFIGS[fp8]
    weight = "*fp8e4nv" if fp8 else "*bf16"
    common = {"HAS_BIAS": True, "IS_FP8": fp8, "BLOCK_N": cfg.block_n, "BLOCK_K": cfg.block_k}
    up = compile_sm90(kernels.moe_up_kernel,
                      {"x_ptr": "*bf16", "idx_ptr": "*i64", "w_ptr": weight, "b_ptr": "*bf16",
                       "s_ptr": "*fp32", "h_ptr": "*bf16"},
                      {**common, "TOP_K": 4, "INTER": 2880, "HIDDEN": 2880, "ACT": 1},
                      cfg.num_warps, cfg.num_stages, tmp_path)
    down = compile_sm90(kernels.moe_down_kernel,
                        {"h_ptr": "*bf16", "idx_ptr": "*i64", "gate_ptr": "*bf16",
                         "w_ptr": weight, "b_ptr": "*bf16", "s_ptr": "*fp32", "y_ptr": "*fp32"},
                        {**common, "HIDDEN": 2880, "INTER": 2880},
                        cfg.num_warps, cfg.num_stages, tmp_path)
    for resources, sass in (up, down):
        assert resources["LOCAL"] == 0, resources  # nothing spilled to local memory
        assert "LDG.E.EF.128" in sass  # weights stream in 16-byte evict-first loads
