"""Triton kernels of the GEMV (see workloads.layers.triton_gemv for the function, the config
tables and the launchers). Imports triton: load it only where triton is."""

import triton
import triton.language as tl

# gemv_m1_kernel's MODE: how the products are formed.
FMA_F32 = tl.constexpr(0)  # fp32 FMA per element (bf16 weights; FP8 before)
F16_CVT = tl.constexpr(1)  # FP8: e4m3 -> fp16 by the hardware convert, packed fp16 FMA
F16_INT_CVT = tl.constexpr(2)  # FP8: e4m3 -> fp16 on the integer pipe, packed fp16 FMA


@triton.jit
def e4m3_to_f16_over_256(w):
    """e4m3 bytes -> fp16 holding value / 256, exactly, on the integer pipe: per 2 bytes
    a prmt to the high byte of each 16-bit lane, then the 7 exponent/mantissa bits one
    place right and the sign put back (Triton's own pre-sm89 conversion, without its bias
    add: the 2^-8 is folded into the output scale)."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 a<2>, b<2>;
        prmt.b32 a0, 0, $2, 0x5040;
        prmt.b32 a1, 0, $2, 0x7060;
        lop3.b32 b0, a0, 0x7fff7fff, 0, 0xc0;
        lop3.b32 b1, a1, 0x7fff7fff, 0, 0xc0;
        shr.b32 b0, b0, 1;
        shr.b32 b1, b1, 1;
        lop3.b32 $0, b0, 0x80008000, a0, 0xf8;
        lop3.b32 $1, b1, 0x80008000, a1, 0xf8;
        }""",
        constraints="=r,=r,r", args=[w.to(tl.uint8, bitcast=True)], dtype=tl.float16,
        is_pure=True, pack=4)

@triton.heuristics({"EVEN_K": lambda a: a["K"] % a["BLOCK_K"] == 0})
@triton.jit
def gemv_m1_kernel(x_ptr, w_ptr, scale_ptr, y_ptr, res_ptr, N, K, stride_wn, rms_eps,
            HAS_SCALE: tl.constexpr, ROW_SCALE: tl.constexpr, IS_FP8: tl.constexpr,
            BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
            MODE: tl.constexpr = 0, FLUSH: tl.constexpr = 8, RMS: tl.constexpr = False,
            RESIDUAL: tl.constexpr = False, X_BLOCK: tl.constexpr = 16):
    """y = W x (x scale), times 1/rms(x) when RMS (the RMSNorm before this projection, its
    weight folded into W: every program reads all of x anyway), plus res when RESIDUAL (the
    residual add after it). The fp32 mode sums x^2 as it streams and scales y at the end; the
    fp16 modes need x normalised before their products (the raw residual stream can reach
    thousands, past what an fp16 partial sum holds), so they take 1/rms first from one load
    of all of x (X_BLOCK >= K; a hidden size, 8 KB, from L2)."""
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    rows = tl.where(n_mask, offs_n, 0)  # clamp: loads stay in bounds without a mask
    offs_k = tl.arange(0, BLOCK_K)
    w_rows = w_ptr + rows[:, None].to(tl.int64) * stride_wn
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    acc16 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float16)
    sum_sq = tl.zeros([BLOCK_K], dtype=tl.float32)
    inv_rms = 1.0
    if RMS and MODE != FMA_F32:
        offs_x = tl.arange(0, X_BLOCK)
        x_all = tl.load(x_ptr + offs_x, mask=offs_x < K, other=0.0).to(tl.float32)
        inv_rms = tl.rsqrt(tl.sum(x_all * x_all, 0) / K + rms_eps)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        k = tl.max_contiguous(tl.multiple_of(k, BLOCK_K), BLOCK_K)
        if EVEN_K:
            x = tl.load(x_ptr + k)
            w = tl.load(w_rows + k[None, :], eviction_policy="evict_first")
        else:
            k_mask = k < K
            x = tl.load(x_ptr + k, mask=k_mask, other=0.0)
            w = tl.load(w_rows + k[None, :], mask=k_mask[None, :], other=0.0,
                        eviction_policy="evict_first")
        if RMS and MODE == FMA_F32:
            sum_sq += x.to(tl.float32) * x.to(tl.float32)
        if MODE == FMA_F32:
            acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        else:
            # FP8 only: products and short sums in packed fp16 (two per HFMA2), flushed
            # to fp32 every FLUSH steps. Both operands carry 2^-8 between them, so a
            # partial sum stays under fp16's 65504 while |x| < 65504 / (1.75 * FLUSH) =
            # 4680: the decoder's GEMV inputs are normalised (RMS here) or SwiGLU outputs.
            if MODE == F16_INT_CVT:
                w16 = e4m3_to_f16_over_256(w)
                x16 = (x.to(tl.float32) * inv_rms).to(tl.float16)
            else:
                w16 = w.to(tl.float16)
                x16 = (x.to(tl.float32) * (inv_rms * 0.00390625)).to(tl.float16)
            acc16 += w16 * x16[None, :]
            if (k0 // BLOCK_K) % FLUSH == FLUSH - 1:
                acc += acc16.to(tl.float32)
                acc16 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float16)
    if MODE != FMA_F32:
        acc = (acc + acc16.to(tl.float32)) * 256.0
    y = tl.sum(acc, axis=1)
    if HAS_SCALE:
        if ROW_SCALE:
            y = y * tl.load(scale_ptr + rows)
        else:
            y = y * tl.load(scale_ptr)
    if RMS and MODE == FMA_F32:
        y = y * tl.rsqrt(tl.sum(sum_sq, 0) / K + rms_eps)
    if RESIDUAL:
        y = y + tl.load(res_ptr + rows).to(tl.float32)
    tl.store(y_ptr + offs_n, y.to(y_ptr.dtype.element_ty), mask=n_mask)

small_m_configs = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
    for bn, bk, w, s in [(16, 256, 4, 3), (32, 256, 4, 3), (32, 128, 4, 4),
                         (64, 128, 4, 3), (64, 256, 8, 3)]
]


@triton.autotune(configs=small_m_configs, key=["N", "K", "IS_FP8"])
@triton.jit
def gemv_small_m(x_ptr, w_ptr, scale_ptr, y_ptr, res_ptr, M, N, K, stride_xm, stride_wn,
                 stride_ym, stride_rm, rms_eps,
                 HAS_SCALE: tl.constexpr, ROW_SCALE: tl.constexpr, IS_FP8: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, RMS: tl.constexpr = False,
                 RESIDUAL: tl.constexpr = False):
    pid = tl.program_id(0)
    offs_m = tl.arange(0, 16)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask, n_mask = offs_m < M, offs_n < N
    rows = tl.where(n_mask, offs_n, 0)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros([16, BLOCK_N], dtype=tl.float32)
    sum_sq = tl.zeros([16], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        k_mask = k < K
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + k[None, :],
                    mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        if RMS:
            sum_sq += tl.sum(x.to(tl.float32) * x.to(tl.float32), axis=1)
        w = tl.load(w_ptr + rows[:, None].to(tl.int64) * stride_wn + k[None, :],
                    mask=k_mask[None, :], other=0.0, eviction_policy="evict_first")
        acc += tl.dot(x, tl.trans(w.to(x.dtype)))
    if HAS_SCALE:
        if ROW_SCALE:
            acc = acc * tl.load(scale_ptr + rows)[None, :]
        else:
            acc = acc * tl.load(scale_ptr)
    if RMS:
        acc = acc * tl.rsqrt(sum_sq / K + rms_eps)[:, None]
    if RESIDUAL:
        acc += tl.load(res_ptr + offs_m[:, None] * stride_rm + offs_n[None, :],
                       mask=m_mask[:, None] & n_mask[None, :], other=0.0).to(tl.float32)
    tl.store(y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :],
             acc.to(y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])
