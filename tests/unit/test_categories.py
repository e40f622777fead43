"""Kernel-name categories on real names (fixtures and a table of names seen on H100s)."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from profilers.parsers.categories import CATEGORIES, categorize, categorize_names

REAL_NAMES = [
    ("nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT", "gemm"),
    ("void cublasLt::splitKreduce_kernel<32, 16, int, float, __half, float, __half, false>", "gemm"),
    ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8>", "gemm"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "gemm"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1_cga1x1x1_kernel0_0", "attention"),
    ("void flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, cutlass::bfloat16_t>>", "attention"),
    # our L3 split-KV decode attention (Triton), as the H200 trace of the FP8 stack named it
    # before the kernels were renamed, and as they are named now
    ("split_kv_kernel", "attention"),
    ("decode_attention_combine_kernel", "attention"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::GeluCUDAKernelImpl(at::TensorIteratorBase&)>", "elementwise"),
    ("triton_poi_fused_add_mul_0", "elementwise"),
    ("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1", "reduction"),
    ("triton_per_fused__softmax_2", "reduction"),
    ("void at::native::(anonymous namespace)::vectorized_gather_kernel<16, long>", "moe_dispatch"),
    ("void at::native::(anonymous namespace)::indexSelectLargeIndex<float, long, unsigned int, 2, 2, -2, true>", "moe_dispatch"),
    ("ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)", "communication"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>", "norm"),
    ("Memcpy DtoD (Device -> Device)", "memcpy"),
    ("Memset (Device)", "memset"),
    ("void at::<unnamed>::distribution_elementwise_grid_stride_kernel<float, 4, normal_and_transform>", "elementwise"),
    ("void at::unrolled_elementwise_kernel<at::direct_copy_kernel_cuda(at::TensorIteratorBase &)>", "elementwise"),
    ("some_unknown_kernel", "other"),
]


@pytest.mark.parametrize(("name", "category"), REAL_NAMES)
def test_real_names(name, category):
    assert categorize(name) == category


def test_every_fixture_kernel_has_the_expected_category(h100_fixtures):
    events = json.loads((h100_fixtures / "torch_trace.json").read_text())["traceEvents"]
    expected = {"nvjet": "gemm", "splitKreduce": "gemm", "cudnn": "attention", "Gelu": "elementwise",
                "Memset": "memset"}
    names = {e["name"] for e in events if e.get("cat") in ("kernel", "gpu_memset")}
    lines = (h100_fixtures / "ncu_raw.csv").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    ncu_names = {r["Kernel Name"] for r in list(csv.DictReader(lines[start:]))[1:]}
    expected.update({"nvjet": "gemm", "distribution_": "elementwise",
                     "vectorized_elementwise": "elementwise", "unrolled_elementwise": "elementwise"})
    for name in names | ncu_names:
        key = next(k for k in expected if k in name)
        assert categorize(name) == expected[key], name


def test_vectorized_with_kinds_and_markup_names():
    names = pd.Categorical(["[bold]nvjet_x[/]", "weird", "weird", "[red]"])
    kinds = ["kernel", "memcpy", "kernel", "memset"]
    out = categorize_names(names, kinds)
    assert list(out) == ["gemm", "memcpy", "other", "memset"]
    assert list(out.categories) == list(CATEGORIES)
    assert len(categorize_names(pd.Categorical([]))) == 0
