"""Advice rules over the kernel table: which kernels take the GPU time, and on what path.

Each rule takes the Facts and returns a Finding or None. Thresholds are module constants so the
evidence can quote them. A rule names a layer only through analyzers.layer_choice (applicable
to the workload and device, never one the run has), quotes this device's ceilings, and says
the microseconds per step its fix can recover."""

from __future__ import annotations

import re

import numpy as np

from analyzers.advice.effect import impact, recoverable_text
from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding
from analyzers.advice.kernel_select import (
    category_mask,
    kind_mask,
    name_mask,
    op_mask,
    short_name,
    time_ns,
    top_names,
)
from profilers.parsers.schema import Category, Col, Kind

FP32_GEMM_SHARE = 0.10
FP8_GEMM_SHARE = 0.30
ELEMENTWISE_CHAIN_SHARE = 0.15
ELEMENTWISE_CHAIN_MIN_LEN = 3
MATH_ATTENTION_SHARE = 0.05
MOE_DISPATCH_SHARE = 0.10

# FP32 GEMMs on the CUDA cores (SIMT): cuBLAS/CUTLASS sgemm, xmma f32 in and out, f32 gemv.
FP32_GEMM_RE = re.compile(r"sgemm|gemm_f32f32_f32f32|simt_s|_s\d{3,4}gemm|gemmSN_|"
                          r"gemmk1_kernel<float|gemv2[NT]_kernel_val<int, int, float|"
                          r"dot_kernel<float", re.I)
TF32_RE = re.compile(r"tf32|xf32", re.I)
FP8_RE = re.compile(r"e4m3|e5m2|fp8|float8|qgmma|_f8", re.I)
# Two-word rules are anchored (one start position, so linear in the name's length): a free
# "cudnn.*sdpa" backtracked quadratically, a 96 KB kernel name took 11 s.
FLASH_RE = re.compile(r"flash|fmha|^(?=.*cudnn)(?=.*sdpa)|flex_?attention|paged_?attention|"
                      r"xformers|mha_fwd|mha_bwd|^(?:(?!triton_tem_fused).)*triton_tem_fused.*attention|"
                      r"efficient_attention", re.I)
MATH_ATTENTION_OPS = re.compile(r"_scaled_dot_product_attention_math|aten::bmm|aten::baddbmm|"
                                r"aten::_softmax|aten::softmax", re.I)
BATCHED_MATMUL_OPS = re.compile(r"aten::bmm|aten::baddbmm|_scaled_dot_product_attention_math", re.I)
# Parent ops of the dispatch path: kernels under them count as dispatch whatever their name
# (index_add_ runs indexFuncLargeIndex<..., ReduceAdd>, which the name rules call a reduction).
MOE_DISPATCH_OPS = re.compile(r"^aten::(index_add_?|index_select|index|index_put_?|_index_put_impl_|"
                              r"gather|scatter_?|scatter_add_?|scatter_reduce_?|nonzero|argsort|sort|"
                              r"topk|bincount|histc|masked_select|masked_scatter_?|unique\w*)$")
MOE_WORKLOAD_RE = re.compile(r"moe|mixtral|gptoss|expert|deepseek|qwen.*moe", re.I)
MOE_OP_RE = re.compile(r"index_add|expert|moe", re.I)
ATTENTION_MATH_OP = re.compile(r"attention_math")
MEMORY_BOUND_CATEGORIES = (Category.ELEMENTWISE, Category.NORM, Category.REDUCTION)


def fp32_gemm_off_tensor_cores(f: Facts) -> Finding | None:
    if not f.has_kernels or f.device_kind == "cpu":
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    gemm = category_mask(kt, Category.GEMM)
    simt = gemm & name_mask(kt, FP32_GEMM_RE) & ~name_mask(kt, TF32_RE)
    how = "kernel names of FP32 SIMT GEMMs (sgemm / f32 in, f32 out)"
    if not simt.any() and str(f.dtype) == "float32" and "L1" not in f.layers:
        simt, how = gemm & ~name_mask(kt, TF32_RE), "the run's dtype float32 with TF32 off (no L1)"
    share = time_ns(kt, simt) / total
    if share < FP32_GEMM_SHARE:
        return None
    top = top_names(kt, simt, total)
    layer = f.layer("precision")
    ceil = f.ceilings
    fp32, tf32 = (ceil.peak("fp32"), ceil.peak("tf32")) if ceil else (None, None)
    gain = fp32 / tf32 if fp32 and tf32 else None
    us = f.us(time_ns(kt, simt) * (1 - gain)) if gain is not None else None
    rates = (f"FP32 {fp32 / 1e12:,.0f} vs TF32 {tf32 / 1e12:,.0f} TFLOP/s, {ceil.source} "
             f"ceilings of the {ceil.device_name}" if fp32 and tf32 and ceil else
             "no FP32/TF32 ceilings known for this device")
    return Finding(
        rule="fp32_gemm_off_tensor_cores",
        finding=f"FP32 GEMMs run on the CUDA cores, not the tensor cores: {share:.0%} of GPU time "
                f"(found by {how}).",
        evidence=(Evidence("fp32 GEMM share of GPU time", share, FP32_GEMM_SHARE, f.source, "share"),
                  Evidence("fp32 GEMM kernels", int(simt.sum()), 1, f.source)),
        action="Enable TF32 (torch.backends.cuda.matmul.allow_tf32 / "
               "set_float32_matmul_precision('high')"
               + (f", layer {layer})" if layer else ")") + " or run the model in bf16.",
        expected_effect=f"Compute-bound GEMM time down by up to {1 / gain:.1f}x ({rates}), "
                        "within the TF32 parity tolerance." if gain else
                        f"GEMMs on the tensor cores ({rates}).",
        confidence="high" if share >= 0.3 else "medium", impact=impact(f, us, share),
        layer=layer, kernels=tuple(n for n, _, _ in top), recoverable_us=us,
        recoverable=recoverable_text(f, us, "the FP32 GEMMs' time at the TF32/FP32 ratio of "
                                     "this device's ceilings",
                                     time_ns(kt, simt) * (1 - gain) if gain is not None else None))


def _gemms_memory_bound(f: Facts) -> bool:
    """Decode GEMMs at small batch move weights, not FLOPs (M = batch tokens)."""
    lines = [ln for ln in getattr(f.budget, "lines", ()) or () if ln.category == Category.GEMM and ln.bound]
    if lines:
        heavy = max(lines, key=lambda ln: ln.measured_ns)
        return heavy.bound == "memory"
    batch = f.shape.get("batch")
    return f.step == "decode" and (not isinstance(batch, int) or batch <= 64)


def fp8_eligible_gemms(f: Facts) -> Finding | None:
    if not f.has_kernels or f.cc is None or f.cc < 8.9 or f.has("fp8_weights"):
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    gemm = category_mask(kt, Category.GEMM)
    fp8 = name_mask(kt, FP8_RE)
    if (gemm & fp8).any():
        return None  # already on FP8
    layer = f.layer("fp8_weights")
    if f.workload and layer is None:
        return None  # no FP8 layer for this workload on this device
    eligible = gemm & ~name_mask(kt, FP32_GEMM_RE) & ~name_mask(kt, TF32_RE)
    if str(f.dtype) == "float32":
        return None  # first move to bf16 (see the FP32 rule)
    share = time_ns(kt, eligible) / total
    if share < FP8_GEMM_SHARE:
        return None
    top = top_names(kt, eligible, total)
    ceil = f.ceilings
    bf16, fp8_peak = (ceil.peak("bf16"), ceil.peak("fp8")) if ceil else (None, None)
    rates = (f"FP8 {fp8_peak / 1e12:,.0f} vs bf16 {bf16 / 1e12:,.0f} TFLOP/s, {ceil.source} "
             f"ceilings of the {ceil.device_name}" if bf16 and fp8_peak and ceil else
             "no FP8 ceiling known for this device")
    memory_bound = _gemms_memory_bound(f)
    if memory_bound:
        saving, why = 0.5, "memory-bound decode GEMMs read half the weight bytes"
    elif bf16 and fp8_peak:
        saving, why = 1 - bf16 / fp8_peak, f"compute-bound GEMMs at the FP8 roof ({rates})"
    else:
        saving, why = 0.0, rates
    us = f.us(time_ns(kt, eligible) * saving) if saving else None
    return Finding(
        rule="fp8_eligible_gemms",
        finding=f"bf16/fp16 GEMMs take {share:.0%} of GPU time on a device with FP8 tensor cores "
                f"(sm_{int(f.cc * 10)}), and none run in FP8.",
        evidence=(Evidence("bf16/fp16 GEMM share of GPU time", share, FP8_GEMM_SHARE, f.source, "share"),
                  Evidence("compute capability", f.cc, 8.9, f.device_name or f.source)),
        action="Try FP8 weight GEMMs"
               + (f" (layer {layer}: e4m3 weights with per-row scales)" if layer else
                  " (torch._scaled_mm with per-row or per-tensor scales)")
               + " and check parity against the FP8 tolerance.",
        expected_effect=("Memory-bound decode GEMMs read half the weight bytes: up to 2x on "
                         "them" if memory_bound else
                         f"Compute-bound GEMMs up to {fp8_peak / bf16:.2f}x faster ({rates})"
                         if bf16 and fp8_peak else f"GEMMs on FP8 tensor cores ({rates})")
                        + (f"; the device's roofs: {rates}." if memory_bound else "."),
        confidence="medium", impact=impact(f, us, share * 0.45), layer=layer,
        kernels=tuple(n for n, _, _ in top), recoverable_us=us,
        recoverable=recoverable_text(f, us, f"{saving:.0%} of the bf16 GEMMs' time ({why})",
                                     time_ns(kt, eligible) * saving))


def elementwise_chains(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    rows = np.flatnonzero(kind_mask(kt, Kind.KERNEL))
    start = kt[Col.START_NS].to_numpy(dtype="float64", na_value=np.nan)[rows]
    if not np.isnan(start).any():  # launch order: by start time where every one is known
        rows = rows[np.argsort(kt[Col.START_NS].to_numpy(dtype="int64", na_value=0)[rows],
                               kind="stable")]
    is_mem = category_mask(kt, *MEMORY_BOUND_CATEGORIES)[rows]
    stream = kt[Col.STREAM].to_numpy(dtype="int64", na_value=-1)[rows]
    dur = kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)[rows]
    chain_ns, chains, lengths = 0, 0, []
    # Runs of consecutive memory-bound kernels, per stream (launch order within a stream);
    # every run of a stream at once (prefix sums), not one Python step per run.
    for s in np.unique(stream):
        sel = np.flatnonzero(stream == s)
        flags = is_mem[sel]
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(int), [0]))))
        starts, ends = edges[::2], edges[1::2]
        long = (ends - starts) >= ELEMENTWISE_CHAIN_MIN_LEN
        summed = np.concatenate(([0], np.cumsum(dur[sel])))
        chains += int(long.sum())
        lengths += (ends - starts)[long].tolist()
        chain_ns += int((summed[ends[long]] - summed[starts[long]]).sum())
    share = chain_ns / total
    if share < ELEMENTWISE_CHAIN_SHARE:
        return None
    mean_len = float(np.mean(lengths))
    top = top_names(kt, category_mask(kt, *MEMORY_BOUND_CATEGORIES), total)
    saved = 1 - 1 / max(mean_len, 1)
    us = f.us(chain_ns * saved)
    layer = f.layer("compile_fusion")
    return Finding(
        rule="elementwise_chains",
        finding=f"Chains of {ELEMENTWISE_CHAIN_MIN_LEN}+ back-to-back memory-bound kernels "
                f"(elementwise / norm / reduction) take {share:.0%} of GPU time "
                f"({chains} chains, {mean_len:.1f} kernels each on average).",
        evidence=(Evidence("memory-bound chain share of GPU time", share, ELEMENTWISE_CHAIN_SHARE,
                           f.source, "share"),
                  Evidence("chains", chains, 1, f.source),
                  Evidence("mean chain length", round(mean_len, 2), ELEMENTWISE_CHAIN_MIN_LEN, f.source)),
        action=("Fuse them: torch.compile turns a pointwise chain into one Triton kernel"
                + (f" (layer {layer})" if layer else
                   f" (no workbench layer for the {f.workload} workload: compile its blocks by "
                   "hand)" if f.workload and not f.has("compile_fusion") else "")
                + "; or use fused ops (fused RMSNorm, fused SwiGLU, fused RoPE)."),
        expected_effect=f"Each chain reads and writes memory once instead of {mean_len:.0f} times: "
                        f"up to {saved:.0%} of that time saved.",
        confidence="medium", impact=impact(f, us, share * saved), layer=layer,
        kernels=tuple(n for n, _, _ in top), recoverable_us=us,
        recoverable=recoverable_text(f, us, f"the chains' time x (1 - 1/{mean_len:.1f} kernels "
                                     "per chain)", chain_ns * saved))


def attention_not_flash(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    if (category_mask(kt, Category.ATTENTION) & name_mask(kt, FLASH_RE)).any():
        return None
    softmax = name_mask(kt, re.compile(r"softmax", re.I))
    batched = op_mask(f, BATCHED_MATMUL_OPS.search)
    math = softmax | op_mask(f, MATH_ATTENTION_OPS.search) | (
        category_mask(kt, Category.ATTENTION) & ~name_mask(kt, FLASH_RE))
    if not op_mask(f, ATTENTION_MATH_OP.search).any() and not (softmax.any() and batched.any()):
        return None  # a softmax alone (sampling, a router) is not an attention
    share = time_ns(kt, math) / total
    if share < MATH_ATTENTION_SHARE:
        return None
    top = top_names(kt, math, total)
    layer = f.layer("attention_kernel")
    us = f.us(time_ns(kt, math) * 0.6)
    return Finding(
        rule="attention_not_flash",
        finding=f"Attention runs on the unfused math path (bmm + softmax kernels, no flash / "
                f"cuDNN attention kernel): {share:.0%} of GPU time.",
        evidence=(Evidence("math-path attention share of GPU time", share, MATH_ATTENTION_SHARE,
                           f.source, "share"),
                  Evidence("flash / cuDNN attention kernels", 0, 1, f.source, comparison="<")),
        action="Use SDPA with the flash or cuDNN backend"
               + (f" (layer {layer})" if layer else
                  f" in the {f.workload} workload's attention (it has no attention layer)"
                  if f.workload and not f.has("attention_kernel") else "")
               + ": bf16/fp16 inputs, no explicit mask where is_causal=True does, head_dim a "
               "multiple of 8.",
        expected_effect="Attention time down several-fold at long context and O(N) instead of "
                        "O(N^2) memory for the scores.",
        confidence="medium", impact=impact(f, us, share * 0.6), layer=layer,
        kernels=tuple(n for n, _, _ in top), recoverable_us=us,
        recoverable=recoverable_text(f, us, "60% of the math path's time (one fused kernel "
                                     "instead of bmm, scale, softmax, bmm)", time_ns(kt, math) * 0.6))


def moe_dispatch(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    by_op = op_mask(f, MOE_DISPATCH_OPS.match) & ~category_mask(kt, Category.GEMM, Category.ATTENTION)
    mask = category_mask(kt, Category.MOE_DISPATCH) | by_op
    share = time_ns(kt, mask) / total
    if share < MOE_DISPATCH_SHARE:
        return None
    top = top_names(kt, mask, total)
    moe_like = (bool(f.router) or len(top) >= 2
                or bool(MOE_WORKLOAD_RE.search(str(f.env.get("workload") or "")))
                or bool(op_mask(f, MOE_OP_RE.search).any()))
    if not moe_like:
        return None
    launches = int(mask.sum())
    names = "; ".join(f"{short_name(n)} {s:.1%}" for n, _, s in top)
    evidence = [Evidence("MoE dispatch (gather/index/scatter/sort) share of GPU time", share,
                         MOE_DISPATCH_SHARE, f.source, "share"),
                Evidence("MoE dispatch kernel launches", launches, None, f.source, comparison="")]
    evidence += [Evidence(f"share of GPU time: {short_name(n)}", s, None, f.source, "share", "")
                 for n, _, s in top]
    layer = f.layer("grouped_experts")
    us = f.us(time_ns(kt, mask))
    return Finding(
        rule="moe_dispatch",
        finding=f"MoE dispatch kernels take {share:.0%} of GPU time ({launches} launches): {names}.",
        evidence=tuple(evidence),
        action="Sort tokens by expert once (argsort of the routing, one permute in, one "
               "un-permute out) and run the experts as one grouped GEMM (torch._grouped_mm or "
               "a fused MoE kernel) instead of a per-expert index/gather/index_add loop"
               + (f" (layer {layer})." if layer else "."),
        expected_effect=f"Most of the {share:.0%} dispatch time and its per-expert launches go "
                        "away; the expert GEMMs become one launch per layer.",
        confidence="high" if share >= 0.2 else "medium", impact=impact(f, us, share),
        layer=layer, kernels=tuple(n for n, _, _ in top), recoverable_us=us,
        recoverable=recoverable_text(f, us, "the dispatch kernels' time", time_ns(kt, mask)))


KERNEL_RULES = (moe_dispatch, fp32_gemm_off_tensor_cores, attention_not_flash, elementwise_chains,
                fp8_eligible_gemms)
