"""The micro-workloads in-process on CPU at tiny size: each variant against its baseline
through the same parity guard the runner uses, plus the pieces each one is built from."""

from __future__ import annotations

import pytest
import torch

from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.micro_attention import (
    MASKS,
    AttentionWorkload,
    allowed_pairs,
    dense_mask,
    mask_predicate,
    naive_attention,
)
from workloads.micro_gemm import GemmWorkload, prune_2_4, quantize_fp8, quantize_int8_rows
from workloads.micro_paged import PagedDecodeWorkload, gather_blocks
from workloads.parity import compare

CPU = torch.device("cpu")
NO_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def built(workload_cls, name: str, preset: str = "tiny", **params):
    merged = {**catalog.get_preset(name, preset), **params}
    workload = workload_cls()
    workload.build(CPU, torch.float32, merged, seed=0)
    return workload, workload.make_inputs(0)


def parity_of(workload, inputs):
    reference = workload.parity_outputs(inputs)
    candidate = workload.parity_outputs(inputs, reference.tokens)
    return compare(reference, candidate, workload.compute_precision)


@pytest.mark.parametrize("mask", MASKS)
def test_allowed_pairs_counts_the_dense_mask(mask: str) -> None:
    for seq in (1, 5, 64, 97):
        predicate = mask_predicate(mask, window=7, block=8, stride=3)
        assert int(dense_mask(predicate, seq, CPU).sum()) == allowed_pairs(mask, seq, 7, 8, 3)


def test_block_sparse_mask_shape_by_hand() -> None:
    # block 2, stride 2, seq 6: query 5 (block 2) sees its own block {4, 5} and block 0 {0, 1}
    row = dense_mask(mask_predicate("block_sparse", 0, 2, 2), 6, CPU)[5]
    assert row.tolist() == [True, True, False, False, True, True]
    sliding = dense_mask(mask_predicate("sliding", 3, 0, 0), 6, CPU)[5]
    assert sliding.tolist() == [False, False, False, True, True, True]


@pytest.mark.parametrize("variant,mask", [("sdpa", "causal"), ("sdpa", "sliding"),
                                          ("sdpa", "block_sparse"), ("flex", "block_sparse"),
                                          ("flex", "sliding")])
def test_attention_variants_match_the_naive_baseline(variant: str, mask: str) -> None:
    workload, inputs = built(AttentionWorkload, "attention", variant=variant, mask=mask,
                             seq=128)
    report = parity_of(workload, inputs)
    assert report.ok and report.max_rel_err < 1e-5 and report.top1_agreement == 1.0
    out = workload.step(inputs)
    assert out.shape == (1, 4, 128, 32)


def test_chunked_reference_equals_the_unchunked_naive_math() -> None:
    workload, (q, k, v) = built(AttentionWorkload, "attention", variant="naive",
                                mask="sliding", ref_chunk=24, seq=100)
    whole = naive_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                            dense_mask(workload.predicate, 100, CPU))
    assert torch.equal(workload.reference_output((q, k, v)), whole)


def test_attention_flops_count_only_allowed_pairs() -> None:
    workload, _ = built(AttentionWorkload, "attention", mask="causal", seq=64)
    assert workload.flops_per_step() == 4.0 * 1 * 4 * 32 * (64 * 65 // 2)


def test_attention_rejects_bad_params() -> None:
    with pytest.raises(WorkbenchError, match="unknown attention mask"):
        built(AttentionWorkload, "attention", mask="diagonal")
    with pytest.raises(WorkbenchError, match="unknown attention variant"):
        built(AttentionWorkload, "attention", variant="magic")


def test_paged_gather_rebuilds_the_contiguous_cache() -> None:
    workload, inputs = built(PagedDecodeWorkload, "paged")
    gathered = gather_blocks(inputs["pool_k"], inputs["table"])
    for b, length in enumerate(workload.lengths_list):
        assert torch.equal(gathered[b, :, :length], inputs["k"][b, :, :length])
    # physical blocks are shuffled: the table is not the identity layout
    used = inputs["table"][inputs["table"] != 0]
    assert used.numel() > 0 and not torch.equal(used, used.sort().values)


def test_paged_decode_parity_and_memory_facts() -> None:
    workload, inputs = built(PagedDecodeWorkload, "paged", context=200, spare_blocks=0)
    report = parity_of(workload, inputs)
    assert report.ok and report.max_rel_err < 1e-5
    facts = workload.extra()
    per_token = 2 * 2 * 32 * 4
    assert facts["kv_bytes_useful"] == per_token * sum(workload.lengths_list)
    assert facts["kv_bytes_contiguous"] == per_token * 4 * max(workload.lengths_list)
    blocks = sum(-(-n // 16) for n in workload.lengths_list)
    assert facts["kv_bytes_paged"] == per_token * 16 * blocks


def test_prune_2_4_keeps_the_two_largest_of_four() -> None:
    w = torch.tensor([[1.0, -5.0, 3.0, 0.5, 2.0, 2.5, -0.1, 0.0]])
    assert prune_2_4(w).tolist() == [[0.0, -5.0, 3.0, 0.0, 2.0, 2.5, 0.0, 0.0]]


def test_quantizers_round_trip_within_their_format() -> None:
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    q8, scale = quantize_int8_rows(w)
    assert q8.dtype == torch.int8 and q8.abs().max() <= 127
    assert ((q8.float() * scale[:, None] - w).abs() <= scale[:, None] / 2 + 1e-7).all()
    f8, s8 = quantize_fp8(w, rowwise=True)
    assert f8.dtype == torch.float8_e4m3fn and s8.shape == (64, 1)
    rel = ((f8.float() * s8 - w).abs() / w.abs().clamp_min(1e-3)).median()
    assert rel < 0.04  # e4m3: 3 mantissa bits, half-ulp relative error <= 6.25%


@pytest.mark.parametrize("variant", ["fp32", "tf32", "bf16", "int8_wo"])
def test_gemm_cpu_variants_pass_parity_and_report_error_vs_fp64(variant: str) -> None:
    workload, inputs = built(GemmWorkload, "gemm", variant=variant)
    report = parity_of(workload, inputs)
    assert report.ok, report
    workload.prepare(inputs)
    error = workload.extra()["error_vs_fp64"]
    bound = {"fp32": 1e-5, "tf32": 1e-5, "bf16": 2e-2, "int8_wo": 3e-2}[variant]
    assert 0 < error["max_rel"] < bound and 0 < error["rms_rel"] <= error["max_rel"]
    assert workload.flops_per_step() == 2.0 * 128 * 256 * 256


@pytest.mark.parametrize("variant", ["fp8_tensor", "fp8_row", "sparse24"])
def test_gemm_gpu_only_variants_are_refused_on_cpu_with_a_reason(variant: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("this box has a GPU")
    with pytest.raises(WorkbenchError, match="compute capability"):
        built(GemmWorkload, "gemm", variant=variant)


@pytest.mark.gpu
@NO_GPU
@pytest.mark.parametrize("variant", ["tf32", "bf16", "fp8_tensor", "fp8_row", "int8_wo",
                                     "sparse24"])
def test_gemm_variants_on_gpu(variant: str) -> None:
    device = torch.device("cuda")
    workload = GemmWorkload()
    workload.build(device, torch.float32, {"m": 1024, "n": 2048, "k": 1024,
                                           "variant": variant}, seed=0)
    inputs = workload.make_inputs(0)
    report = parity_of(workload, inputs)
    assert report.ok, report
    workload.prepare(inputs)
    assert workload.extra()["error_vs_fp64"]["max_rel"] < 0.15


@pytest.mark.gpu
@NO_GPU
@pytest.mark.parametrize("variant", ["sdpa", "flex"])
def test_attention_on_gpu_bf16(variant: str) -> None:
    workload = AttentionWorkload()
    params = {**catalog.get_preset("attention", "8k"), "seq": 2048, "variant": variant,
              "mask": "block_sparse"}
    workload.build(torch.device("cuda"), torch.bfloat16, params, seed=0)
    inputs = workload.make_inputs(0)
    assert parity_of(workload, inputs).ok
    workload.prepare(inputs)
    assert workload.extra()["step_peak_mem_bytes"] > 0
