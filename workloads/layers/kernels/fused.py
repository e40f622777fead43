"""Triton kernels of the fused decode-step ops (see workloads.layers.triton_fused for what each
computes and the torch code it must match). Imports triton: load it only where triton is."""

import triton
import triton.language as tl

E4M3_MAX = tl.constexpr(448.0)


@triton.jit
def round_to_e4m3(x):
    """x (fp32, |x| <= 448) rounded to the nearest e4m3 value, ties to even, so the cast to
    e4m3 that follows is exact. The hardware cast rounds the same way; the interpreter's
    mishandles a mantissa carry (31.1 -> 16), and this makes both paths one."""
    bits = x.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -0x100000  # keep 3 mantissa bits
    normal = bits.to(tl.float32, bitcast=True)
    magnitude = tl.abs(x)
    tiny = (magnitude + 16384.0) - 16384.0  # subnormals: multiples of 2^-9
    tiny = tl.where(x < 0, -tiny, tiny)
    return tl.where(magnitude < 0.015625, tiny, normal)


@triton.jit
def encode_e4m3(x, scale):
    scaled = tl.minimum(tl.maximum(x / scale, -E4M3_MAX), E4M3_MAX)
    return round_to_e4m3(scaled).to(tl.float8e4nv)


@triton.jit
def rope_kv_write_kernel(
        q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, pos_ptr, kc_ptr, vc_ptr, table_ptr, scale_ptr,
        qo_ptr, heads, stride_qb, stride_qh, stride_kb, stride_kh, stride_vb, stride_vh,
        stride_pos, stride_kc0, stride_kc1, stride_kc2, stride_vc0, stride_vc1, stride_vc2,
        stride_tb, stride_qob, stride_qoh,
        HALF: tl.constexpr, BLOCK_HALF: tl.constexpr, PAGE: tl.constexpr, FP8: tl.constexpr):
    b = tl.program_id(0)
    head = tl.program_id(1)
    offs = tl.arange(0, BLOCK_HALF)
    mask = offs < HALF
    cos_lo = tl.load(cos_ptr + offs, mask=mask, other=0.0)
    cos_hi = tl.load(cos_ptr + HALF + offs, mask=mask, other=0.0)
    sin_lo = tl.load(sin_ptr + offs, mask=mask, other=0.0)
    sin_hi = tl.load(sin_ptr + HALF + offs, mask=mask, other=0.0)
    if head < heads:
        src = q_ptr + b * stride_qb + head * stride_qh
        x_lo = tl.load(src + offs, mask=mask, other=0.0).to(tl.float32)
        x_hi = tl.load(src + HALF + offs, mask=mask, other=0.0).to(tl.float32)
        dst = qo_ptr + b * stride_qob + head * stride_qoh
        out_ty = qo_ptr.dtype.element_ty
        tl.store(dst + offs, (x_lo * cos_lo - x_hi * sin_lo).to(out_ty), mask=mask)
        tl.store(dst + HALF + offs, (x_hi * cos_hi + x_lo * sin_hi).to(out_ty), mask=mask)
    else:
        h = head - heads
        src = k_ptr + b * stride_kb + h * stride_kh
        x_lo = tl.load(src + offs, mask=mask, other=0.0).to(tl.float32)
        x_hi = tl.load(src + HALF + offs, mask=mask, other=0.0).to(tl.float32)
        k_ty = k_ptr.dtype.element_ty
        k_lo = (x_lo * cos_lo - x_hi * sin_lo).to(k_ty)  # rounded as the model's k is
        k_hi = (x_hi * cos_hi + x_lo * sin_hi).to(k_ty)
        v_src = v_ptr + b * stride_vb + h * stride_vh
        v_lo = tl.load(v_src + offs, mask=mask, other=0.0)
        v_hi = tl.load(v_src + HALF + offs, mask=mask, other=0.0)
        pos = tl.load(pos_ptr + b * stride_pos)
        if PAGE > 0:
            block = tl.load(table_ptr + b * stride_tb + pos // PAGE).to(tl.int64)
            k_row = block * stride_kc0 + (pos % PAGE) * stride_kc1 + h * stride_kc2
            v_row = block * stride_vc0 + (pos % PAGE) * stride_vc1 + h * stride_vc2
        else:
            k_row = b * stride_kc0 + h * stride_kc1 + pos * stride_kc2
            v_row = b * stride_vc0 + h * stride_vc1 + pos * stride_vc2
        if FP8:
            scale = tl.load(scale_ptr)
            tl.store(kc_ptr + k_row + offs, encode_e4m3(k_lo.to(tl.float32), scale), mask=mask)
            tl.store(kc_ptr + k_row + HALF + offs, encode_e4m3(k_hi.to(tl.float32), scale),
                     mask=mask)
            tl.store(vc_ptr + v_row + offs, encode_e4m3(v_lo.to(tl.float32), scale), mask=mask)
            tl.store(vc_ptr + v_row + HALF + offs, encode_e4m3(v_hi.to(tl.float32), scale),
                     mask=mask)
        else:
            tl.store(kc_ptr + k_row + offs, k_lo, mask=mask)
            tl.store(kc_ptr + k_row + HALF + offs, k_hi, mask=mask)
            tl.store(vc_ptr + v_row + offs, v_lo, mask=mask)
            tl.store(vc_ptr + v_row + HALF + offs, v_hi, mask=mask)


@triton.jit
def rms_norm_kernel(x_ptr, w_ptr, out_ptr, n_cols, eps, stride_x, stride_out,
                    HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    dtype = out_ptr.dtype.element_ty
    x32 = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
    normed = (x32 * tl.rsqrt(tl.sum(x32 * x32, 0) / n_cols + eps)).to(dtype)
    if HAS_WEIGHT:
        weight = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        normed = (normed.to(tl.float32) * weight).to(dtype)
    tl.store(out_ptr + row * stride_out + offs, normed, mask=mask)


@triton.jit
def swiglu_kernel(x_ptr, out_ptr, n_cols, stride_x, stride_out, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_cols
    dtype = out_ptr.dtype.element_ty
    gate = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + n_cols + offs, mask=mask, other=0.0).to(tl.float32)
    silu = (gate / (1.0 + tl.exp(-gate))).to(dtype).to(tl.float32)
    tl.store(out_ptr + row * stride_out + offs, (silu * up).to(dtype), mask=mask)
