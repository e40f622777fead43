"""workloads.op_cost: FLOPs and bytes of one op call, from live tensors or a trace's shapes."""

from __future__ import annotations

import pytest

from workloads.op_cost import TensorArg, canonical_name, op_cost

BF16, FP32, FP8, I64 = "torch.bfloat16", "torch.float32", "torch.float8_e4m3fn", "torch.int64"


def t(*shape: int, dtype: str = BF16, stored: int | None = None) -> TensorArg:
    return TensorArg(tuple(shape), dtype, stored)


def test_names_from_both_sources_are_one_name():
    assert canonical_name("aten.linear.default") == "aten::linear"
    assert canonical_name("aten::linear") == "aten::linear"
    assert canonical_name("aiperf.gemv.default") == "aiperf::gemv"
    assert canonical_name("aten.to.dtype") == "aten::to"


def test_addmm_from_a_trace_moved_from_the_roofline_tests():
    # Kineto spelling: shapes and "Input type" strings, scalars as None.
    cost = op_cost("aten::addmm", [t(4096, dtype="c10::BFloat16"), t(64, 1024, dtype="c10::BFloat16"),
                                   t(1024, 4096, dtype="c10::BFloat16"), None, None])
    assert cost.kind == "gemm" and (cost.m, cost.n, cost.k) == (64, 4096, 1024)
    assert cost.flops == 2 * 64 * 1024 * 4096
    assert cost.bytes == (4096 + 64 * 1024 + 1024 * 4096 + 64 * 4096) * 2
    assert cost.weight_bytes == 1024 * 4096 * 2


def test_linear_folds_the_batch_into_m_and_streams_the_weight():
    cost = op_cost("aten.linear.default", [t(1, 1, 4096), t(6144, 4096), None],
                   outputs=[t(1, 1, 6144)])
    assert (cost.m, cost.n, cost.k, cost.batch) == (1, 6144, 4096, 1)
    assert cost.flops == 2 * 6144 * 4096
    assert cost.weight_bytes == 6144 * 4096 * 2
    assert cost.bytes == (4096 + 6144 * 4096 + 6144) * 2
    assert cost.dtype == "bf16" and cost.weight_dtype == "bf16"


def test_fp8_gemv_reads_one_byte_per_weight():
    cost = op_cost("aiperf::gemv", [t(1, 4096), t(14336, 4096, dtype=FP8), t(14336, dtype=FP32)],
                   outputs=[t(1, 14336)])
    assert cost.flops == 2 * 14336 * 4096
    assert cost.weight_bytes == 14336 * 4096
    assert cost.bytes == 4096 * 2 + 14336 * 4096 + 14336 * 4 + 14336 * 2
    assert cost.weight_dtype == "fp8"


def test_batched_matmul_has_no_weight_and_broadcasts_batch():
    # eager decode attention: q folded [B, kv_heads, group, D] @ keys^T [B, kv_heads, D, T]
    cost = op_cost("aten::matmul", [t(1, 8, 4, 128), t(1, 8, 128, 129)])
    assert (cost.batch, cost.m, cost.n, cost.k) == (8, 4, 129, 128)
    assert cost.flops == 2 * 8 * 4 * 129 * 128
    assert cost.weight_bytes is None
    assert cost.bytes == (8 * 4 * 128 + 8 * 128 * 129 + 8 * 4 * 129) * 2


def test_grouped_gemm_reads_only_the_experts_that_got_rows():
    args = [t(48, 2048, dtype=FP8), t(64, 2048, 2816, dtype=FP8), t(48, dtype=FP32),
            t(64, 2816, dtype=FP32), t(64, dtype="torch.int32")]
    every = op_cost("aten::_scaled_grouped_mm", args)
    active = op_cost("aten::_scaled_grouped_mm", args, extra={"active_groups": 30})
    assert every.flops == active.flops == 2 * 48 * 2816 * 2048
    assert every.weight_bytes == 64 * 2048 * 2816
    assert active.weight_bytes == 30 * 2048 * 2816
    assert every.bytes - active.bytes == 34 * 2048 * 2816


def test_sdpa_causal_counts_the_lower_triangle_and_a_mask_counts_everything():
    q = k = v = t(8, 16, 2048, 128, dtype="c10::BFloat16")
    causal = op_cost("aten::scaled_dot_product_attention", [q, k, v, None, 0.0, True])
    assert causal.flops == 2 * 8 * 16 * (2048 * 2049 / 2) * 256
    assert causal.causal is True and causal.kv_bytes == 2 * 8 * 16 * 2048 * 128 * 2
    full = op_cost("aten::scaled_dot_product_attention", [q, k, v, None, 0.0, False])
    assert full.flops == 2 * 8 * 16 * 2048 * 2048 * 256
    # static-cache decode: 4 folded query rows over max_seq keys with an explicit mask
    mask = t(4, 1024, dtype="torch.bool")
    masked = op_cost("aten::scaled_dot_product_attention",
                     [t(1, 8, 4, 128), t(1, 8, 1024, 128), t(1, 8, 1024, 128), mask, 0.0, True])
    assert masked.flops == 2 * 8 * 4 * 1024 * 256 and masked.kv_len == 1024
    assert masked.bytes == (8 * 4 * 128 * 2) * 2 + 2 * 8 * 1024 * 128 * 2 + 4 * 1024


def test_flash_forward_reads_batch_seq_heads_layout():
    # aten::_flash_attention_forward takes [B, S, H, D]; is_causal is argument 8
    q = t(2, 512, 32, 128)
    kv = t(2, 512, 8, 128)
    cost = op_cost("aten::_flash_attention_forward",
                   [q, kv, kv, None, None, 512, 512, 0.0, True, False, None])
    assert (cost.batch, cost.heads, cost.kv_heads, cost.q_len, cost.kv_len) == (2, 32, 8, 512, 512)
    assert cost.flops == 2 * 2 * 32 * (512 * 513 / 2) * 256


def test_cudnn_forward_from_concrete_inputs_strings():
    q = t(8, 16, 2048, 128, dtype="c10::BFloat16")
    args = [q, q, q, None, None, None, 2048, 2048, False, 0.0, "True", False, None]
    assert op_cost("aten::_cudnn_attention_forward", args).flops == \
        2 * 8 * 16 * (2048 * 2049 / 2) * 256


def test_gather_reads_only_the_rows_it_picks():
    table = t(128256, 4096)
    cost = op_cost("aten::embedding", [table, t(1, 1, dtype=I64)])
    assert cost.kind == "gather" and cost.flops == 0
    assert cost.bytes == 2 * 4096 * 2 + 8  # one row read, one row written, the index


def test_scatter_writes_only_the_rows_it_gets():
    cache = t(1, 8, 1024, 128)
    cost = op_cost("aten::index_copy_", [cache, 2, t(1, dtype=I64), t(1, 8, 1, 128)])
    assert cost.kind == "scatter" and cost.bytes == 2 * 8 * 128 * 2 + 8
    added = op_cost("aten::index_add_", [t(16, 64), 0, t(4, dtype=I64), t(4, 64)])
    assert added.bytes == 3 * 4 * 64 * 2 + 4 * 8  # read-modify-write of the rows


def test_elementwise_counts_expanded_inputs_once_and_broadcasts_the_output():
    cost = op_cost("aten::mul", [t(1, 1, 4096, dtype=FP32), t(1, 1, 1, dtype=FP32)])
    assert cost.kind == "elementwise" and cost.flops == 4096
    assert cost.bytes == (4096 + 1 + 4096) * 4
    expanded = op_cost("aten::add", [t(4, 4096, dtype=FP32, stored=4096), t(4, 4096, dtype=FP32)],
                       outputs=[t(4, 4096, dtype=FP32)])
    assert expanded.bytes == (4096 + 4 * 4096 + 4 * 4096) * 4


def test_copy_into_a_slice_reads_source_and_writes_destination():
    cost = op_cost("aten::copy_", [t(1, 8, 1, 128), t(1, 8, 1, 128, dtype=FP32)])
    assert cost.kind == "copy" and cost.flops == 0
    assert cost.bytes == 8 * 128 * 4 + 8 * 128 * 2


def test_unknown_stays_none_never_zero():
    nonzero = op_cost("aten::nonzero", [t(1, 4096, dtype=FP32)])
    assert nonzero.kind == "reduction" and nonzero.bytes is None  # output size: data-dependent
    assert op_cost("aten::mean", [t(1, 4096, dtype=FP32)], outputs=[t(1, 1, dtype=FP32)]
                   ).bytes == (4096 + 1) * 4
    assert op_cost("aten::mm", [t(3, 4), t(5, 6)]).flops is None  # K does not agree
    assert op_cost("aten::linear", [t(1, 64, dtype="TensorList"), t(32, 64)]).bytes is None
    assert op_cost("mystery::op", []).flops is None


@pytest.mark.parametrize("dtype, size", [("c10::BFloat16", 2), ("float", 4), ("long int", 8),
                                         ("c10::Float8_e4m3fn", 1), ("torch.bool", 1)])
def test_dtype_spellings_of_both_sources(dtype, size):
    assert TensorArg((10,), dtype).nbytes == 10 * size


def test_reduction_outputs_from_a_traces_dim_arguments():
    # Kineto's Concrete Inputs: "[-1]" for a ScalarList, "-1" for a Scalar
    mean = op_cost("aten::mean", [t(1, 64, 1024, dtype="float"), "[-1]", True, None])
    assert mean.bytes == (64 * 1024 + 64) * 4
    total = op_cost("aten::sum", [t(1, 64, dtype="bool")])
    assert total.bytes == 64 + 1  # no dim: everything reduced
    top = op_cost("aten::topk", [t(64, 64, dtype="float"), 6, -1, True, True])
    assert top.bytes == 64 * 64 * 4 + 64 * 6 * (4 + 8)
    arg = op_cost("aten::argmax", [t(1, 32000, dtype="float"), -1, False])
    assert arg.bytes == 32000 * 4 + 8
    soft = op_cost("aten::_softmax", [t(64, 64, dtype="float"), -1, False])
    assert soft.bytes == 2 * 64 * 64 * 4


def test_a_bool_mask_does_not_set_the_output_type():
    where = op_cost("aten::where", [t(32000, dtype="bool"), float("-inf"), t(1, 32000, dtype="float")])
    assert where.kind == "elementwise" and where.bytes == 32000 + 32000 * 4 + 32000 * 4


def test_split_kv_decode_attention_reads_only_the_live_keys():
    """L3's aiperf::decode_attention on the 8B preset's static cache (8 KV heads of 128, 8,448
    slots): at position 128 it reads 129 keys and values per KV head, not the whole cache."""
    q = t(1, 32, 128)
    cache = t(1, 8, 8448, 128)
    pos = t(1, dtype=I64)
    live = op_cost("aiperf::decode_attention", [q, cache, cache, pos, None, None, 0],
                   extra={"kv_len": 129.0})
    assert live.kind == "attention" and live.kv_len == 129
    assert live.kv_bytes == 2 * 8 * 129 * 128 * 2  # K and V of the live keys, bf16
    assert live.flops == 2.0 * 32 * 129 * (128 + 128)
    bound = op_cost("aiperf.decode_attention.default", [q, cache, cache, pos, None, None, 0])
    assert bound.kv_len == 8448  # no live length known (fake tensors): the capacity bounds it
    windowed = op_cost("aiperf::decode_attention", [q, cache, cache, pos, None, None, 128],
                       extra={"kv_len": 4096.0})
    assert windowed.kv_len == 128  # a sliding window reads its window
