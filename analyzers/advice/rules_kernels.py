"""Advice rules over the kernel table: which kernels take the GPU time, and on what path.

Each rule takes the Facts and returns a Finding or None. Thresholds are module constants so the
evidence can quote them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding

FP32_GEMM_SHARE = 0.10
FP8_GEMM_SHARE = 0.30
ELEMENTWISE_CHAIN_SHARE = 0.15
ELEMENTWISE_CHAIN_MIN_LEN = 3
MATH_ATTENTION_SHARE = 0.05
MOE_DISPATCH_SHARE = 0.10
LOW_OCCUPANCY = 0.25
LOW_OCCUPANCY_SHARE = 0.05
NCCL_EXPOSED_SHARE = 0.05

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
MEMORY_BOUND_CATEGORIES = ("elementwise", "norm", "reduction")

# Per-SM limits by compute capability major.minor: threads, registers, shared memory, blocks.
_SM_LIMITS = {9.0: (2048, 65536, 233472, 32), 8.0: (2048, 65536, 167936, 32),
              8.6: (1536, 65536, 102400, 16), 8.9: (1536, 65536, 102400, 24),
              10.0: (2048, 65536, 233472, 32), 7.0: (2048, 65536, 98304, 32),
              7.5: (1024, 65536, 65536, 16)}


def _ns(kt: pd.DataFrame, mask: np.ndarray) -> int:
    return int(kt["dur_ns"].to_numpy(dtype="int64", na_value=0)[mask].sum())


def _name_mask(kt: pd.DataFrame, pattern: re.Pattern[str]) -> np.ndarray:
    names = kt["name"].astype("category")
    hits = np.array([bool(pattern.search(str(n))) for n in names.cat.categories], dtype=bool)
    codes = np.asarray(names.cat.codes)
    return np.where(codes >= 0, hits[np.clip(codes, 0, None)] if len(hits) else False, False)


def _top_names(kt: pd.DataFrame, mask: np.ndarray, total_ns: int, n: int = 3
               ) -> list[tuple[str, int, float]]:
    sub = kt[mask]
    if not len(sub):
        return []
    sums = sub.groupby(sub["name"].astype(str), observed=True)["dur_ns"].sum().sort_values(ascending=False)
    return [(str(k), int(v), int(v) / total_ns) for k, v in sums.head(n).items()]


def _cat_mask(kt: pd.DataFrame, *cats: str) -> np.ndarray:
    return np.asarray(kt["category"].astype(str).isin(cats))


def fp32_gemm_off_tensor_cores(f: Facts) -> Finding | None:
    if not f.has_kernels or f.device_kind == "cpu":
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    gemm = _cat_mask(kt, "gemm")
    simt = gemm & _name_mask(kt, FP32_GEMM_RE) & ~_name_mask(kt, TF32_RE)
    how = "kernel names of FP32 SIMT GEMMs (sgemm / f32 in, f32 out)"
    if not simt.any() and str(f.dtype) == "float32" and "L1" not in f.layers:
        simt, how = gemm & ~_name_mask(kt, TF32_RE), "the run's dtype float32 with TF32 off (no L1)"
    share = _ns(kt, simt) / total
    if share < FP32_GEMM_SHARE:
        return None
    top = _top_names(kt, simt, total)
    return Finding(
        rule="fp32_gemm_off_tensor_cores",
        finding=f"FP32 GEMMs run on the CUDA cores, not the tensor cores: {share:.0%} of GPU time "
                f"(found by {how}).",
        evidence=(Evidence("fp32 GEMM share of GPU time", share, FP32_GEMM_SHARE, f.source, "share"),
                  Evidence("fp32 GEMM kernels", int(simt.sum()), 1, f.source)),
        action="Enable TF32 (layer L1: torch.backends.cuda.matmul.allow_tf32 / "
               "set_float32_matmul_precision('high')) or run the model in bf16.",
        expected_effect="GEMM time down by up to ~8x on H100 (FP32 51 vs TF32 398 TFLOP/s "
                        "measured), within the TF32 parity tolerance.",
        confidence="high" if share >= 0.3 else "medium", impact=share, layer="L1",
        kernels=tuple(n for n, _, _ in top))


def fp8_eligible_gemms(f: Facts) -> Finding | None:
    if not f.has_kernels or f.cc is None or f.cc < 8.9:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    gemm = _cat_mask(kt, "gemm")
    fp8 = _name_mask(kt, FP8_RE)
    if (gemm & fp8).any() or any(layer.startswith("L5") and "fp8" in layer.lower() for layer in f.layers):
        return None  # already on FP8
    eligible = gemm & ~_name_mask(kt, FP32_GEMM_RE) & ~_name_mask(kt, TF32_RE)
    if str(f.dtype) == "float32":
        return None  # first move to bf16 (see the FP32 rule)
    share = _ns(kt, eligible) / total
    if share < FP8_GEMM_SHARE:
        return None
    top = _top_names(kt, eligible, total)
    return Finding(
        rule="fp8_eligible_gemms",
        finding=f"bf16/fp16 GEMMs take {share:.0%} of GPU time on a device with FP8 tensor cores "
                f"(sm_{int(f.cc * 10)}), and none run in FP8.",
        evidence=(Evidence("bf16/fp16 GEMM share of GPU time", share, FP8_GEMM_SHARE, f.source, "share"),
                  Evidence("compute capability", f.cc, 8.9, f.device_name or f.source)),
        action="Try FP8 weight GEMMs (layer L5: torch._scaled_mm with per-row or per-tensor "
               "scales) and check parity against the FP8 tolerance.",
        expected_effect="Compute-bound GEMMs up to ~1.8x faster (FP8 1423 vs bf16 783 TFLOP/s "
                        "measured on H100); memory-bound decode GEMMs read half the weight bytes.",
        confidence="medium", impact=share * 0.45, layer="L5",
        kernels=tuple(n for n, _, _ in top))


def elementwise_chains(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    kern = kt[kt["kind"].astype(str) == "kernel"]
    if "start_ns" in kern and kern["start_ns"].notna().all():
        kern = kern.sort_values("start_ns", kind="stable")
    is_mem = np.asarray(kern["category"].astype(str).isin(MEMORY_BOUND_CATEGORIES))
    stream = kern["stream"].to_numpy(dtype="int64", na_value=-1)
    dur = kern["dur_ns"].to_numpy(dtype="int64", na_value=0)
    chain_ns, chains, lengths = 0, 0, []
    # Runs of consecutive memory-bound kernels, per stream (launch order within a stream).
    for s in np.unique(stream):
        sel = np.flatnonzero(stream == s)
        flags = is_mem[sel]
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(int), [0]))))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            if end - start >= ELEMENTWISE_CHAIN_MIN_LEN:
                chains += 1
                lengths.append(int(end - start))
                chain_ns += int(dur[sel[start:end]].sum())
    share = chain_ns / total
    if share < ELEMENTWISE_CHAIN_SHARE:
        return None
    mean_len = float(np.mean(lengths))
    top = _top_names(kt, _cat_mask(kt, *MEMORY_BOUND_CATEGORIES), total)
    return Finding(
        rule="elementwise_chains",
        finding=f"Chains of {ELEMENTWISE_CHAIN_MIN_LEN}+ back-to-back memory-bound kernels "
                f"(elementwise / norm / reduction) take {share:.0%} of GPU time "
                f"({chains} chains, {mean_len:.1f} kernels each on average).",
        evidence=(Evidence("memory-bound chain share of GPU time", share, ELEMENTWISE_CHAIN_SHARE,
                           f.source, "share"),
                  Evidence("chains", chains, 1, f.source),
                  Evidence("mean chain length", round(mean_len, 2), ELEMENTWISE_CHAIN_MIN_LEN, f.source)),
        action="Fuse them: torch.compile (layer L5) turns a pointwise chain into one Triton kernel; "
               "or use fused ops (fused RMSNorm, fused SwiGLU, fused RoPE).",
        expected_effect=f"Each chain reads and writes memory once instead of {mean_len:.0f} times: "
                        f"up to {1 - 1 / max(mean_len, 1):.0%} of that time saved.",
        confidence="medium", impact=share * (1 - 1 / max(mean_len, 1)), layer="L5",
        kernels=tuple(n for n, _, _ in top))


def attention_not_flash(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    if (_cat_mask(kt, "attention") & _name_mask(kt, FLASH_RE)).any():
        return None
    ops = kt["op_name"].astype(object).fillna("").astype(str)
    softmax = _name_mask(kt, re.compile(r"softmax", re.I))
    batched = np.asarray(ops.str.contains(BATCHED_MATMUL_OPS))
    math = softmax | np.asarray(ops.str.contains(MATH_ATTENTION_OPS)) | (
        _cat_mask(kt, "attention") & ~_name_mask(kt, FLASH_RE))
    if not np.asarray(ops.str.contains("attention_math")).any() and not (softmax.any() and batched.any()):
        return None  # a softmax alone (sampling, a router) is not an attention
    share = _ns(kt, math) / total
    if share < MATH_ATTENTION_SHARE:
        return None
    top = _top_names(kt, math, total)
    return Finding(
        rule="attention_not_flash",
        finding=f"Attention runs on the unfused math path (bmm + softmax kernels, no flash / "
                f"cuDNN attention kernel): {share:.0%} of GPU time.",
        evidence=(Evidence("math-path attention share of GPU time", share, MATH_ATTENTION_SHARE,
                           f.source, "share"),
                  Evidence("flash / cuDNN attention kernels", 0, 1, f.source, comparison="<")),
        action="Use SDPA with the flash or cuDNN backend (layer L3): bf16/fp16 inputs, no "
               "explicit mask where is_causal=True does, head_dim a multiple of 8.",
        expected_effect="Attention time down several-fold at long context and O(N) instead of "
                        "O(N^2) memory for the scores.",
        confidence="medium", impact=share * 0.6, layer="L3",
        kernels=tuple(n for n, _, _ in top))


def moe_dispatch(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    ops = kt["op_name"].astype(object).fillna("").astype(str)
    by_op = np.asarray(ops.str.match(MOE_DISPATCH_OPS)) & ~_cat_mask(kt, "gemm", "attention")
    mask = _cat_mask(kt, "moe_dispatch") | by_op
    share = _ns(kt, mask) / total
    if share < MOE_DISPATCH_SHARE:
        return None
    top = _top_names(kt, mask, total)
    moe_like = (bool(f.router) or len(top) >= 2
                or bool(MOE_WORKLOAD_RE.search(str(f.env.get("workload") or "")))
                or bool(np.asarray(ops.str.contains("index_add|expert|moe", case=False)).any()))
    if not moe_like:
        return None
    launches = int(mask.sum())
    names = "; ".join(f"{_short(n)} {s:.1%}" for n, _, s in top)
    evidence = [Evidence("MoE dispatch (gather/index/scatter/sort) share of GPU time", share,
                         MOE_DISPATCH_SHARE, f.source, "share"),
                Evidence("MoE dispatch kernel launches", launches, None, f.source, comparison="")]
    evidence += [Evidence(f"share of GPU time: {_short(n)}", s, None, f.source, "share", "")
                 for n, _, s in top]
    return Finding(
        rule="moe_dispatch",
        finding=f"MoE dispatch kernels take {share:.0%} of GPU time ({launches} launches): {names}.",
        evidence=tuple(evidence),
        action="Sort tokens by expert once (argsort of the routing, one permute in, one "
               "un-permute out) and run the experts as one grouped GEMM (torch._grouped_mm or "
               "a fused MoE kernel) instead of a per-expert index/gather/index_add loop.",
        expected_effect=f"Most of the {share:.0%} dispatch time and its per-expert launches go "
                        "away; the expert GEMMs become one launch per layer.",
        confidence="high" if share >= 0.2 else "medium", impact=share,
        kernels=tuple(n for n, _, _ in top))


def _short(name: str, width: int = 60) -> str:
    """A kernel's readable core: no "void ", no arguments, no template arguments, no
    namespaces ("void at::native::sbtopk::gatherTopK<float, ...>(...)" -> "gatherTopK")."""
    text = name[5:] if name.startswith("void ") else name
    depth, core = 0, []
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "(" and depth == 0:
            break
        elif depth == 0:
            core.append(ch)
    short = "".join(core).strip().split("::")[-1] or name
    return short if len(short) <= width else short[: width - 3] + "..."


def _occupancy(regs: np.ndarray, smem: np.ndarray, threads: np.ndarray, cc: float | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Theoretical occupancy (fraction of max warps) and its limiter per kernel."""
    max_threads, max_regs, max_smem, max_blocks = _SM_LIMITS.get(cc or 9.0, _SM_LIMITS[9.0])
    warps = np.ceil(threads / 32.0)
    regs_per_warp = np.ceil(regs * 32 / 256.0) * 256
    with np.errstate(divide="ignore", invalid="ignore"):
        by_regs = np.where(regs > 0, np.floor(max_regs / (regs_per_warp * warps)), np.inf)
        by_smem = np.where(smem > 0, np.floor(max_smem / (smem + 1024.0)), np.inf)
        by_threads = np.floor(max_threads / threads)
    limits = np.vstack([by_regs, by_smem, by_threads, np.full(len(regs), float(max_blocks))])
    blocks = limits.min(axis=0)
    occ = blocks * warps / (max_threads / 32.0)
    limiter = np.array(["registers", "shared memory", "threads", "blocks"])[limits.argmin(axis=0)]
    return occ, limiter


def low_occupancy(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    km = f.kernel_metrics
    theo_col = "sm__maximum_warps_per_active_cycle_pct"
    if km is not None and theo_col in km.columns and len(km) == len(kt):
        occ = pd.to_numeric(km[theo_col], errors="coerce").to_numpy(dtype="float64") / 100.0
        lim_cols = {"registers": "launch__occupancy_limit_registers",
                    "shared memory": "launch__occupancy_limit_shared_mem",
                    "threads": "launch__occupancy_limit_warps", "blocks": "launch__occupancy_limit_blocks"}
        lims = np.vstack([pd.to_numeric(km.get(c, pd.Series([np.nan] * len(km))), errors="coerce")
                          .to_numpy(dtype="float64") for c in lim_cols.values()])
        limiter = np.array(list(lim_cols))[np.nan_to_num(lims, nan=np.inf).argmin(axis=0)]
        how = "ncu theoretical occupancy"
    else:
        regs = kt["registers"].to_numpy(dtype="float64", na_value=np.nan)
        smem = kt["shared_mem"].to_numpy(dtype="float64", na_value=np.nan)
        threads = np.array([float(np.prod(b)) if isinstance(b, (tuple, list)) and len(b) else np.nan
                            for b in kt["block"]], dtype="float64")
        known = ~np.isnan(regs) & ~np.isnan(threads) & (threads > 0)
        if not known.any():
            return None
        occ = np.full(len(kt), np.nan)
        limiter = np.array([""] * len(kt), dtype=object)
        o, lim = _occupancy(regs[known], np.nan_to_num(smem[known]), threads[known], f.cc)
        occ[known], limiter[known] = o, lim
        how = "occupancy computed from registers/thread, shared memory and block size"
    # Tensor-core GEMM and attention kernels run at low occupancy by design (TMA, warp
    # specialization); the rule is about the rest.
    low = (~np.isnan(occ) & (occ <= LOW_OCCUPANCY) & np.isin(limiter, ["registers", "shared memory"])
           & ~_cat_mask(kt, "gemm", "attention", "communication"))
    share = _ns(kt, low) / total
    if share < LOW_OCCUPANCY_SHARE:
        return None
    top = _top_names(kt, low, total)
    worst = float(np.nanmin(occ[low]))
    lim_counts = pd.Series(limiter[low]).value_counts()
    main_limiter = str(lim_counts.index[0])
    return Finding(
        rule="low_occupancy",
        finding=f"Kernels at <= {LOW_OCCUPANCY:.0%} theoretical occupancy, limited by "
                f"{main_limiter}, take {share:.0%} of GPU time (lowest {worst:.0%}; {how}).",
        evidence=(Evidence("low-occupancy kernel share of GPU time", share, LOW_OCCUPANCY_SHARE,
                           f.source, "share"),
                  Evidence("lowest theoretical occupancy", worst, LOW_OCCUPANCY, f.source, "share", "<="),
                  Evidence("limiter", main_limiter, "registers or shared memory", f.source, comparison="in")),
        action=("Cut registers per thread (smaller tiles, __launch_bounds__ / maxrregcount, "
                "Triton num_warps / smaller BLOCK)" if main_limiter == "registers" else
                "Use less shared memory per block (smaller tiles, fewer pipeline stages)")
               + " so more blocks fit on an SM; or let torch.compile autotune the kernel (L5).",
        expected_effect="More resident warps hide memory latency: memory-bound kernels get "
                        "closer to the bandwidth roof.",
        confidence="low", impact=share * 0.3, kernels=tuple(n for n, _, _ in top))


def _merge(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted, disjoint (starts, ends)."""
    if not len(s):
        return s, e
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > e[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(s) - 1)
    return s[first], e[last]


def nccl_not_overlapped(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt, total = f.kernels, f.total_ns
    assert kt is not None and total
    comm = _cat_mask(kt, "communication")
    if not comm.any() or kt["start_ns"].isna().any():
        return None
    start = kt["start_ns"].to_numpy(dtype="int64")
    end = start + kt["dur_ns"].to_numpy(dtype="int64", na_value=0)
    dev = kt["device"].to_numpy(dtype="int64", na_value=-1) * 100_000 + kt["rank"].to_numpy(
        dtype="int64", na_value=-1)
    comm_ns, exposed = 0, 0
    for d in np.unique(dev[comm]):
        on = dev == d
        cs, ce = start[on & comm], end[on & comm]
        ks, ke = start[on & ~comm], end[on & ~comm]
        comm_ns += int((ce - cs).sum())
        ms, me = _merge(ks, ke)
        covered = 0
        for s, e in zip(cs, ce, strict=True):
            lo = np.searchsorted(me, s, side="right")  # first merged interval ending after s
            hi = np.searchsorted(ms, e, side="left")  # past the last one starting before e
            if hi > lo:
                covered += int((np.minimum(me[lo:hi], e) - np.maximum(ms[lo:hi], s)).sum())
        exposed += int((ce - cs).sum()) - covered
    exposed_share = exposed / total
    if exposed_share < NCCL_EXPOSED_SHARE:
        return None
    overlap = 1 - exposed / comm_ns if comm_ns else None
    top = _top_names(kt, comm, total)
    return Finding(
        rule="nccl_not_overlapped",
        finding=f"Collective communication is not hidden behind compute: {exposed_share:.0%} of "
                f"GPU time is NCCL with no kernel running beside it ({f.ranks} rank(s); "
                f"{overlap:.0%} of NCCL time overlapped).",
        evidence=(Evidence("exposed NCCL share of GPU time", exposed_share, NCCL_EXPOSED_SHARE,
                           f.source, "share"),
                  Evidence("NCCL time overlapped with compute", overlap, 0.5, f.source, "share", "<"),
                  Evidence("ranks", f.ranks, None, f.source, comparison="")),
        action="Overlap communication with compute: bucketed async all-reduce (DDP buckets, "
               "FSDP prefetch), async_op=True collectives on a side stream, or tensor-parallel "
               "matmuls that overlap the all-gather / reduce-scatter.",
        expected_effect=f"Up to {exposed_share:.0%} of step time hidden.",
        confidence="medium", impact=exposed_share, kernels=tuple(n for n, _, _ in top))


KERNEL_RULES = (moe_dispatch, fp32_gemm_off_tensor_cores, attention_not_flash, elementwise_chains,
                fp8_eligible_gemms, low_occupancy, nccl_not_overlapped)
