"""Triton kernels of the fused decode-time expert GEMVs (see workloads.layers.moe_gemv for the
function, the grid and the launcher). Imports triton: load it only where triton is. Kernels
live at module level so they can call each other (the interpreter resolves callees through
the module's globals)."""

import triton
import triton.language as tl

from workloads.layers.moe_experts import GPTOSS_ALPHA, GPTOSS_LIMIT

LIMIT = tl.constexpr(GPTOSS_LIMIT)
ALPHA = tl.constexpr(GPTOSS_ALPHA)


@triton.jit
def _act(g, u, ACT: tl.constexpr):
    if ACT == 1:  # gpt-oss: clamped SwiGLU with alpha, (up + 1)
        g = tl.minimum(g, LIMIT)
        u = tl.minimum(tl.maximum(u, -LIMIT), LIMIT)
        return (u + 1.0) * (g * tl.sigmoid(g * ALPHA))
    return g * tl.sigmoid(g) * u


@triton.jit
def moe_up_kernel(x_ptr, idx_ptr, w_ptr, b_ptr, s_ptr, h_ptr,
                  stride_x, stride_we, stride_wn, stride_be, stride_se, stride_h,
                  TOP_K: tl.constexpr, INTER: tl.constexpr, HIDDEN: tl.constexpr,
                  HAS_BIAS: tl.constexpr, IS_FP8: tl.constexpr, ACT: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    slot = tl.program_id(0)
    block = tl.program_id(1)
    token = slot // TOP_K
    expert = tl.load(idx_ptr + slot).to(tl.int64)
    offs_n = block * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < INTER
    rows = tl.where(n_mask, offs_n, 0)  # clamp: loads stay in bounds without a row mask
    w_base = w_ptr + expert * stride_we
    gate_rows = w_base + rows[:, None].to(tl.int64) * stride_wn
    up_rows = w_base + (rows + INTER)[:, None].to(tl.int64) * stride_wn
    x_row = x_ptr + token.to(tl.int64) * stride_x
    offs_k = tl.arange(0, BLOCK_K)
    acc_g = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc_u = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k0 in range(0, HIDDEN, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < HIDDEN
        xk = tl.load(x_row + k, mask=k_mask, other=0.0).to(tl.float32)
        wg = tl.load(gate_rows + k[None, :], mask=k_mask[None, :], other=0.0,
                     eviction_policy="evict_first")
        wu = tl.load(up_rows + k[None, :], mask=k_mask[None, :], other=0.0,
                     eviction_policy="evict_first")
        acc_g += wg.to(tl.float32) * xk[None, :]
        acc_u += wu.to(tl.float32) * xk[None, :]
    g = tl.sum(acc_g, axis=1)
    u = tl.sum(acc_u, axis=1)
    if IS_FP8:
        s_base = s_ptr + expert * stride_se
        g = g * tl.load(s_base + rows)
        u = u * tl.load(s_base + rows + INTER)
    if HAS_BIAS:
        b_base = b_ptr + expert * stride_be
        g = g + tl.load(b_base + rows).to(tl.float32)
        u = u + tl.load(b_base + rows + INTER).to(tl.float32)
    h = _act(g, u, ACT)
    tl.store(h_ptr + slot.to(tl.int64) * stride_h + offs_n, h.to(h_ptr.dtype.element_ty),
             mask=n_mask)

@triton.jit
def moe_down_kernel(h_ptr, idx_ptr, gate_ptr, w_ptr, b_ptr, s_ptr, y_ptr,
                    stride_h, stride_we, stride_wn, stride_be, stride_se, stride_y,
                    HIDDEN: tl.constexpr, INTER: tl.constexpr, HAS_BIAS: tl.constexpr,
                    IS_FP8: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    slot = tl.program_id(0)
    block = tl.program_id(1)
    expert = tl.load(idx_ptr + slot).to(tl.int64)
    offs_n = block * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < HIDDEN
    rows = tl.where(n_mask, offs_n, 0)
    w_rows = w_ptr + expert * stride_we + rows[:, None].to(tl.int64) * stride_wn
    h_row = h_ptr + slot.to(tl.int64) * stride_h
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k0 in range(0, INTER, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < INTER
        hk = tl.load(h_row + k, mask=k_mask, other=0.0).to(tl.float32)
        w = tl.load(w_rows + k[None, :], mask=k_mask[None, :], other=0.0,
                    eviction_policy="evict_first")
        acc += w.to(tl.float32) * hk[None, :]
    y = tl.sum(acc, axis=1)
    if IS_FP8:
        y = y * tl.load(s_ptr + expert * stride_se + rows)
    if HAS_BIAS:
        y = y + tl.load(b_ptr + expert * stride_be + rows).to(tl.float32)
    y = y * tl.load(gate_ptr + slot).to(tl.float32)
    tl.store(y_ptr + slot.to(tl.int64) * stride_y + offs_n, y, mask=n_mask)
