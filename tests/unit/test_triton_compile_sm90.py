"""Every Triton kernel variant the decode step launches compiles for sm_90 (the H200) with the
ptxas and cuobjdump that ship in the triton wheel — no GPU needed — without spills, and the
memory-bound ones load 16 bytes per instruction. The interpreter accepts code the compiler
refuses (a non-constexpr global in encode_e4m3 ran there and failed to compile), so this is
the check that stands in for a GPU build. Integer args are compiled as the launcher
specializes them at run time (divisible by 16)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workloads.layers.triton_support import has_triton

pytestmark = pytest.mark.skipif(not has_triton(), reason="triton is not installed")


def compile_sm90(jit: Any, types: dict[str, str], constexprs: dict[str, Any], warps: int,
                 stages: int, tmp_path: Path) -> tuple[dict[str, int], str]:
    """(resource usage, SASS) of the kernel built for sm_90."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    fn = jit
    while not isinstance(fn, JITFunction):  # through @autotune / @heuristics wrappers
        fn = fn.fn
    names = fn.arg_names
    signature = {a: "constexpr" if a in constexprs else types.get(a, "i32") for a in names}
    aligned = [a for a in names if a not in constexprs and not types.get(a, "i32").startswith(
        "fp") and a not in ("window", "num_splits", "kv_heads", "heads", "pos", "N", "K", "M")]
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
    resources = {key: int(value) for key, value in re.findall(r"(REG|STACK|LOCAL):(\d+)", usage)}
    return resources, sass


ATTENTION_TYPES = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "pos_ptr": "*i64",
                   "table_ptr": "*i64", "scale_ptr": "*fp32", "out_ptr": "*bf16",
                   "part_ptr": "*fp32", "lse_ptr": "*fp32", "qk_scale": "fp32"}


@pytest.mark.parametrize("group, fp8, page, split", [(4, False, 0, True), (4, False, 0, False),
                                                     (1, False, 16, True), (8, True, 16, True),
                                                     (4, True, 0, True)])
def test_split_kv_kernel_compiles_to_wide_loads_and_mma(tmp_path, group, fp8, page, split):
    from workloads.layers.kernels import decode_attention

    types = dict(ATTENTION_TYPES)
    if fp8:
        types.update(k_ptr="*fp8e4nv", v_ptr="*fp8e4nv")
    resources, sass = compile_sm90(
        decode_attention.decode_attention_split_kv_kernel, types,
        {"GROUP": group, "GROUP_PAD": 16, "HEAD_DIM": 128, "BLOCK_D": 128, "BLOCK_N": 64,
         "PAGE": page, "FP8": fp8, "SPLIT": split, "DOT_F32": False}, 4, 2, tmp_path)
    assert resources["LOCAL"] == 0 and resources["STACK"] == 0  # nothing spilled
    assert "HMMA" in sass  # both dots on the tensor cores (fp16 for FP8 KV)
    if not fp8:  # K and V tiles arrive in 16-byte asynchronous copies
        assert len(re.findall(r"LDGSTS\.E\.BYPASS\.128", sass)) >= 16


def test_fused_and_combine_kernels_compile(tmp_path):
    from workloads.layers.kernels import decode_attention, fused

    cases = [
        (decode_attention.decode_attention_combine_kernel, {"part_ptr": "*fp32", "lse_ptr": "*fp32",
                                           "out_ptr": "*bf16"},
         {"HEAD_DIM": 128, "BLOCK_D": 128, "BLOCK_S": 64}, 4),
        (fused.rope_kv_write_kernel, {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16",
                                      "cos_ptr": "*fp32", "sin_ptr": "*fp32", "pos_ptr": "*i64",
                                      "kc_ptr": "*fp8e4nv", "vc_ptr": "*fp8e4nv",
                                      "table_ptr": "*i64", "scale_ptr": "*fp32",
                                      "qo_ptr": "*bf16"},
         {"HALF": 64, "BLOCK_HALF": 64, "PAGE": 16, "FP8": True}, 1),
        (fused.rms_norm_kernel, {"x_ptr": "*bf16", "w_ptr": "*bf16", "out_ptr": "*bf16",
                                 "eps": "fp32"}, {"HAS_WEIGHT": True, "BLOCK": 4096}, 8),
        (fused.swiglu_kernel, {"x_ptr": "*bf16", "out_ptr": "*bf16"}, {"BLOCK": 1024}, 4),
    ]
    for jit, types, constexprs, warps in cases:
        resources, sass = compile_sm90(jit, types, constexprs, warps, 1, tmp_path)
        assert resources["LOCAL"] == 0, jit
    # the row kernels stream 16 bytes per load
    assert "LDG.E.128" in sass


@pytest.mark.parametrize("mode, fused", [(0, False), (1, False), (2, False), (2, True)])
def test_fp8_gemv_modes_compile_and_drop_the_fp32_convert(tmp_path, mode, fused):
    """Mode 0 converts each e4m3 weight to fp16 and again to fp32 (HADD2.F32) before its FFMA;
    the packed modes multiply in fp16 pairs (HFMA2) and convert to fp32 only at flushes."""
    from workloads.layers.kernels import gemv

    resources, sass = compile_sm90(
        gemv.gemv_m1_kernel, {"x_ptr": "*bf16", "w_ptr": "*fp8e4nv", "scale_ptr": "*fp32",
                              "y_ptr": "*bf16", "res_ptr": "*bf16", "rms_eps": "fp32"},
        {"HAS_SCALE": True, "ROW_SCALE": True, "IS_FP8": True, "BLOCK_N": 32, "BLOCK_K": 256,
         "EVEN_K": True, "MODE": mode, "FLUSH": 8, "RMS": fused, "RESIDUAL": fused,
         "X_BLOCK": 4096}, 4, 2,
        tmp_path)
    assert resources["LOCAL"] == 0 and resources["STACK"] == 0
    assert "LDG.E.EF.128" in sass  # weights in 16-byte loads, evict-first
    packed = len(re.findall(r"HFMA2 |HMUL2 ", sass))  # not HFMA2.MMA (a move)
    if mode == 0:
        assert "HADD2.F32" in sass and "FFMA" in sass and packed == 0
    else:  # 64 weights per thread per step: ~32 packed products (ptxas folds a few)
        assert packed >= 24


def test_small_m_gemv_with_the_norm_and_residual_compiles(tmp_path):
    from workloads.layers.kernels import gemv

    resources, sass = compile_sm90(
        gemv.gemv_small_m, {"x_ptr": "*bf16", "w_ptr": "*bf16", "scale_ptr": "*fp32",
                            "y_ptr": "*bf16", "res_ptr": "*bf16", "rms_eps": "fp32"},
        {"HAS_SCALE": False, "ROW_SCALE": False, "IS_FP8": False, "BLOCK_N": 32,
         "BLOCK_K": 256, "RMS": True, "RESIDUAL": True}, 4, 3, tmp_path)
    assert resources["LOCAL"] == 0 and "HMMA" in sass
