"""Triton kernels of the split-KV decode attention (see workloads.layers.triton_decode_attention
for the function, the grid and the launcher). Imports triton: load it only where triton is."""

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, F32: tl.constexpr):
    if F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b)

@triton.jit
def decode_attention_split_kv_kernel(
        q_ptr, k_ptr, v_ptr, pos_ptr, table_ptr, scale_ptr, out_ptr, part_ptr, lse_ptr,
        qk_scale, window, num_splits, kv_heads,
        stride_qb, stride_qh, stride_k0, stride_k1, stride_k2,
        stride_v0, stride_v1, stride_v2, stride_tb, stride_pos,
        stride_ob, stride_oh, stride_pb, stride_ph, stride_ps,
        GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, PAGE: tl.constexpr,
        FP8: tl.constexpr, SPLIT: tl.constexpr, DOT_F32: tl.constexpr):
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = bh // kv_heads
    h = bh % kv_heads
    length = tl.load(pos_ptr + b * stride_pos).to(tl.int32) + 1
    lo = 0
    if window > 0:
        lo = tl.maximum(length - window, 0)
    per_split = tl.cdiv(tl.cdiv(length - lo, num_splits), BLOCK_N) * BLOCK_N
    start = lo + split * per_split
    end = tl.minimum(start + per_split, length)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, BLOCK_D)
    g_mask = offs_g < GROUP
    d_mask = offs_d < HEAD_DIM
    heads = h * GROUP + offs_g
    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=g_mask[:, None] & d_mask[None, :], other=0.0)
    scale = qk_scale
    if FP8:
        kv_scale = tl.load(scale_ptr)
        scale = scale * kv_scale
        q = q.to(tl.float16)

    m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    acc = tl.zeros([GROUP_PAD, BLOCK_D], dtype=tl.float32)
    for t0 in range(start, end, BLOCK_N):
        t = t0 + tl.arange(0, BLOCK_N)
        t_mask = t < end
        if PAGE > 0:
            block = tl.load(table_ptr + b * stride_tb + t // PAGE, mask=t_mask, other=0)
            k_rows = block.to(tl.int64) * stride_k0 + (t % PAGE) * stride_k1 + h * stride_k2
            v_rows = block.to(tl.int64) * stride_v0 + (t % PAGE) * stride_v1 + h * stride_v2
        else:
            k_rows = b * stride_k0 + h * stride_k1 + t.to(tl.int64) * stride_k2
            v_rows = b * stride_v0 + h * stride_v1 + t.to(tl.int64) * stride_v2
        kv_mask = t_mask[:, None] & d_mask[None, :]
        k = tl.load(k_ptr + k_rows[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + v_rows[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        if FP8:
            k = k.to(tl.float16)
            v = v.to(tl.float16)
        s = _dot(q, tl.trans(k), DOT_F32) * scale
        s = tl.where(t_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT_F32)
        m_i = m_new
    if FP8:
        acc = acc * kv_scale
    out = acc / tl.maximum(l_i, 1e-30)[:, None]
    mask = g_mask[:, None] & d_mask[None, :]
    if SPLIT:
        lse = tl.where(l_i > 0, m_i + tl.log2(tl.maximum(l_i, 1e-30)), float("-inf"))
        row = b * stride_pb + heads * stride_ph + split * stride_ps
        tl.store(part_ptr + row[:, None] + offs_d[None, :], out, mask=mask)
        tl.store(lse_ptr + (b * kv_heads * GROUP + heads) * num_splits + split, lse,
                 mask=g_mask)
    else:
        tl.store(out_ptr + b * stride_ob + heads[:, None] * stride_oh + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=mask)

@triton.jit
def decode_attention_combine_kernel(part_ptr, lse_ptr, out_ptr, num_splits, heads,
                   stride_pb, stride_ph, stride_ps, stride_ob, stride_oh,
                   HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
    row = tl.program_id(0)
    b = row // heads
    h = row % heads
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_mask = offs_s < num_splits
    d_mask = offs_d < HEAD_DIM
    base = b * stride_pb + h * stride_ph
    lse = tl.load(lse_ptr + row * num_splits + offs_s, mask=s_mask, other=float("-inf"))
    weights = tl.exp2(lse - tl.max(lse, 0))
    weights = tl.where(s_mask, weights, 0.0)
    part = tl.load(part_ptr + base + offs_s[:, None] * stride_ps + offs_d[None, :],
                   mask=s_mask[:, None] & d_mask[None, :], other=0.0)
    out = tl.sum(part * weights[:, None], 0) / tl.sum(weights, 0)
    tl.store(out_ptr + b * stride_ob + h * stride_oh + offs_d,
             out.to(out_ptr.dtype.element_ty), mask=d_mask)
