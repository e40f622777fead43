"""Cases for the advice rules: the real H100 fixtures, and small kernel tables captured from
real traces (real kernel names, launch shapes and timings) for the situations the fixtures do
not show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analyzers.ceilings import spec_ceilings
from analyzers.run_analysis import RunAnalysis, analyze_tables
from profilers.parsers.kernel_table import make_kernel_table

H100 = "NVIDIA H100 80GB HBM3"


def fixture_analysis(fixtures: Path, name: str) -> RunAnalysis:
    from workbench.api.pipeline.analysis import analyze_paths

    return analyze_paths([fixtures / name])[1]


def table_analysis(rows: list[dict[str, Any]], runtime: list[dict[str, Any]] | None = None,
                   device: str = H100) -> RunAnalysis:
    """rows: name, dur_ns and optionally start_ns, stream, kind, op_name, registers,
    shared_mem, block, rank, correlation."""
    cols: dict[str, list[Any]] = {k: [r.get(k) for r in rows] for k in (
        "name", "dur_ns", "start_ns", "stream", "op_name", "registers", "shared_mem", "block",
        "rank", "correlation")}
    cols["kind"] = [r.get("kind", "kernel") for r in rows]
    cols["device"] = [0] * len(rows)
    if all(v is None for v in cols["start_ns"]):  # back to back on one stream
        t, starts = 1_000_000, []
        for r in rows:
            starts.append(t)
            t += int(r["dur_ns"]) + 1_000
        cols["start_ns"] = starts
    cols["stream"] = [s if s is not None else 7 for s in cols["stream"]]
    kt = make_kernel_table(cols, source="torch")
    rt = pd.DataFrame(runtime) if runtime is not None else None
    return analyze_tables("kineto", kt, runtime=rt, ceilings=spec_ceilings(device), device_name=device)


def session_analysis(home: Path, run_id: str) -> tuple[RunAnalysis, dict[str, Any]]:
    """A stored session's analysis (through the real loader, as the CLI and app get it) and its
    record as a dict."""
    from sessions.store import SessionStore
    from workbench.api.pipeline.analysis import load_run_analysis

    store = SessionStore(home)
    rec = store.get(run_id)
    return load_run_analysis(store, rec), rec.to_dict()


def record(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "20260101-000000-abcdef", "spec": {"workload": "dense",
                            "preset": "small", "layers": ["L0"]},
                            "env": {"device_name": H100, "device_kind": "cuda", "cc": [9, 0]},
                            "metrics": {}, "parity": {}, "telemetry": {}, "details": {},
                            "artifacts": {"trace": "trace.json.gz"}}
    for key, value in parts.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


# A math-path SDPA (bf16, A100/H100 eager without the flash backend): bmm, scale, softmax, bmm.
MATH_ATTENTION = [
    {"name": "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_32x5_nn", "dur_ns": 210_000,
     "op_name": "aten::bmm"},
    {"name": "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<c10::BFloat16, c10::BFloat16, c10::BFloat16, at::native::binary_internal::MulFunctor<float> >, at::detail::Array<char*, 3> >(int, at::native::BinaryFunctor<c10::BFloat16, c10::BFloat16, c10::BFloat16, at::native::binary_internal::MulFunctor<float> >, at::detail::Array<char*, 3>)",
     "dur_ns": 60_000, "op_name": "aten::mul"},
    {"name": "void (anonymous namespace)::softmax_warp_forward<c10::BFloat16, c10::BFloat16, float, 11, false, false>(c10::BFloat16*, c10::BFloat16 const*, int, int, int, bool const*, int, bool)",
     "dur_ns": 150_000, "op_name": "aten::_softmax"},
    {"name": "ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x4_nn", "dur_ns": 190_000,
     "op_name": "aten::bmm"},
    {"name": "nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT", "dur_ns": 400_000, "op_name": "aten::mm"},
]

# FP32 GEMMs on the CUDA cores (cuBLAS SIMT sgemm, TF32 off) in an fp32 MLP.
FP32_MLP = [
    {"name": "cutlass_80_simt_sgemm_128x64_8x5_nn_align1", "dur_ns": 900_000, "op_name": "aten::mm"},
    {"name": "void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::silu_kernel(at::TensorIteratorBase&)::{lambda()#1}::operator()() const::{lambda()#2}::operator()() const::{lambda(float)#1}, at::detail::Array<char*, 2> >(int, at::native::(anonymous namespace)::silu_kernel(at::TensorIteratorBase&)::{lambda()#1}::operator()() const::{lambda()#2}::operator()() const::{lambda(float)#1}, at::detail::Array<char*, 2>)",
     "dur_ns": 40_000, "op_name": "aten::silu"},
    {"name": "ampere_sgemm_128x64_nn", "dur_ns": 800_000, "op_name": "aten::mm"},
]

# Torch-compiled Triton kernels with heavy register use (autotune picked 8 warps, 255 regs).
TRITON_HEAVY = [
    {"name": "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0", "dur_ns": 300_000,
     "registers": 255, "shared_mem": 0, "block": (256, 1, 1)},
    {"name": "triton_per_fused__softmax_1", "dur_ns": 200_000, "registers": 232,
     "shared_mem": 49152, "block": (256, 1, 1)},
    {"name": "nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT", "dur_ns": 500_000,
     "registers": 168, "shared_mem": 188636, "block": (384, 1, 1)},
]

# MoE dispatch of an eager per-expert loop (HF Mixtral-style): topk, sort, index, gather,
# index_add, between the expert GEMMs.
MOE_LOOP = [
    {"name": "void at::native::sbtopk::gatherTopK<float, unsigned int, 2, false>(at::cuda::detail::TensorInfo<float, unsigned int>, unsigned int, unsigned int, bool, unsigned int, unsigned int, at::cuda::detail::TensorInfo<float, unsigned int>, unsigned int, at::cuda::detail::TensorInfo<long, unsigned int>, unsigned int, float*)",
     "dur_ns": 9_000, "op_name": "aten::topk"},
    {"name": "void at::native::index_elementwise_kernel<128, 4, at::native::gpu_index_kernel<at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1}>(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>, at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1} const&)::{lambda(int)#1}>(long, at::native::gpu_index_kernel<at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1}>(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>, at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1} const&)::{lambda(int)#1})",
     "dur_ns": 6_000, "op_name": "aten::index"},
    {"name": "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", "dur_ns": 7_000, "op_name": "aten::mm"},
    {"name": "void at::native::indexFuncLargeIndex<c10::BFloat16, long, unsigned int, 2, 2, -2, true, at::native::ReduceAdd>(at::cuda::detail::TensorInfo<c10::BFloat16, unsigned int>, at::cuda::detail::TensorInfo<c10::BFloat16, unsigned int>, at::cuda::detail::TensorInfo<long, unsigned int>, int, int, unsigned int, unsigned int, long, long, at::native::ReduceAdd const&, c10::BFloat16)",
     "dur_ns": 5_000, "op_name": "aten::index_add_"},
    {"name": "void at::native::(anonymous namespace)::indexSelectSmallIndex<c10::BFloat16, long, unsigned int, 2, 2, -2>(at::cuda::detail::TensorInfo<c10::BFloat16, unsigned int>, at::cuda::detail::TensorInfo<c10::BFloat16, unsigned int>, at::cuda::detail::TensorInfo<long, unsigned int>, int, int, unsigned int, long)",
     "dur_ns": 4_000, "op_name": "aten::index_select"},
]
