"""Bandwidth-tuned Triton GEMV for small M (decode), bf16/fp16 or FP8 e4m3 weights.

    y[m, n] = scale[n] * sum_k x[m, k] * W[n, k]      W: [N, K] row-major (nn.Linear layout)
            [ * 1/rms(x[m]) ]  [ + residual[m, n] ]

The optional terms fuse the decoder's RMSNorm and residual add into the GEMVs around them
(L5-gemv / L5-fp8, see lowbit.fold_norm_weights): the norm's weight is folded into W once,
and 1/rms(x) = rsqrt(mean(x^2) + eps) is summed by each program from the x it streams
anyway; the residual is added in the epilogue. No norm or add kernel runs between GEMVs.

Batch-1 decode is a stream over the weights: every byte is read once and used once, so the
kernel is shaped for DRAM bandwidth, not FLOPs. Each program owns BLOCK_N output rows and walks
K in BLOCK_K chunks; a row chunk is contiguous, so each thread issues 16-byte vector loads
(BLOCK_K is a multiple of 8 bf16 / 16 fp8 elements). For M == 1 the products accumulate in a
[BLOCK_N, BLOCK_K] fp32 register tile and are reduced once at the end (no shuffles in the
loop). For 1 < M <= 16 the tile goes through ``tl.dot`` with M padded to 16, so W is still
read once for all rows. FP8 weights are dequantized in registers (convert, then one multiply
by the per-row scale after the reduction). Weights are loaded with evict_first: they will not
be reused before the next token, and x should stay in L2.

This module imports triton lazily: the CPU box has no usable triton, and the registry must
import everywhere. ``gemv_reference`` is the same math in torch (used on CPU and in tests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

MAX_M = 16


def gemv_reference(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
                   residual: torch.Tensor | None = None, rms_eps: float = 0.0
                   ) -> torch.Tensor:
    """The kernel's math in torch: fp32 accumulate, per-row (or scalar) scale, 1/rms(x) when
    ``rms_eps`` > 0, + residual, x's dtype out."""
    x32 = x.float()
    y = x32 @ weight.float().t()
    if scale is not None:
        y = y * scale.float().reshape(1, -1)
    if rms_eps > 0:
        y = y * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + rms_eps)
    if residual is not None:
        y = y + residual.float()
    return y.to(x.dtype)


@functools.cache
def _kernels() -> Any:
    import triton

    def configs(table: list[tuple[int, int, int, int, int]]) -> list[Any]:
        return [triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "MODE": mode}, num_warps=w,
                              num_stages=s) for mode, bn, bk, w, s in table]

    # (MODE, BLOCK_N, BLOCK_K, warps, stages); MODE 0 = fp32 FMA, 1/2 = packed fp16 FMA with
    # the hardware / integer e4m3 convert (kernels.gemv). bf16: a [BLOCK_N, BLOCK_K] tile of
    # 8-32 KB per step. FP8 rows are half the bytes, so its fp32 tiles run longer in K for the
    # same bytes in flight (on an H200 the bf16 list's picks left FP8 QKV at 15% of copy
    # bandwidth). On an H200 the fp32 FP8 path topped out near 15.5 weights per clock per SM
    # (3.5-4.1 TB/s where bf16 streamed 4.3-4.5): per weight it spent a convert to fp16 and
    # one to fp32 (HADD2.F32) before its FFMA; the fp16 modes spend half a convert and half an
    # HFMA2 (sm_90 SASS, compiled here), and the timing below picks per shape.
    m1_configs = {
        False: configs([(0, 4, 1024, 4, 1), (0, 8, 512, 4, 1), (0, 8, 1024, 4, 2),
                        (0, 16, 512, 4, 2), (0, 16, 512, 8, 1), (0, 16, 1024, 8, 2),
                        (0, 32, 256, 4, 2), (0, 32, 512, 8, 2), (0, 64, 256, 8, 1),
                        (0, 2, 2048, 4, 1), (0, 4, 2048, 8, 1), (0, 8, 1024, 8, 3)]),
        True: configs([(0, 8, 1024, 4, 2), (0, 16, 1024, 8, 1), (0, 32, 512, 8, 2),
                       (0, 32, 256, 4, 2), (0, 8, 2048, 8, 1), (0, 64, 512, 8, 2),
                       (1, 16, 512, 4, 2), (1, 32, 256, 4, 2), (1, 16, 1024, 8, 2),
                       (1, 32, 512, 8, 2), (2, 16, 512, 4, 2), (2, 32, 256, 4, 2),
                       (2, 16, 1024, 8, 2), (2, 32, 512, 8, 2)]),
    }

    from workloads.layers.kernels import gemv

    return triton, gemv.gemv_m1_kernel, m1_configs, gemv.gemv_small_m


def time_in_graph(calls: Sequence[Callable[[], Any]], replays: int = 10) -> float:
    """Microseconds per call of ``calls`` captured back to back in one CUDA graph and
    replayed: no CPU launch cost in the figure (a decode step is graphed too). Callers rotate
    over enough distinct weights that every call streams them from DRAM, not from L2."""
    for call in calls[:1]:
        call()  # compile / first launch outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    graph.replay()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / (replays * len(calls))


def rotation(weight: torch.Tensor, min_launches: int = 3) -> list[torch.Tensor]:
    """The weight and copies of it, enough that one pass over them is three times the L2:
    consecutive GEMVs then read from DRAM, as in a decode step. Large weights repeat."""
    l2 = torch.cuda.get_device_properties(weight.device).L2_cache_size
    nbytes = weight.numel() * weight.element_size()
    copies = max(1, -(-3 * l2 // nbytes))
    weights = [weight] + [weight.clone() for _ in range(copies - 1)]
    return [weights[i % copies] for i in range(max(copies, min_launches))]


_M1_CHOICE: dict[tuple[Any, ...], Any] = {}
M1_TIMINGS: dict[tuple[Any, ...], list[tuple[float, str]]] = {}  # what the choice saw
REJECTED: dict[tuple[Any, ...], list[str]] = {}  # configs whose output disagreed
AGREEMENT_REL = 1e-2  # the fp16 modes round products to fp16: ~1e-3 of the fp32 path


def _agrees(y: torch.Tensor, first: torch.Tensor) -> bool:
    diff = float((y.float() - first).norm())
    return diff == diff and diff <= AGREEMENT_REL * float(first.norm())  # NaN disagrees


def m1_config(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None) -> Any:
    """The M=1 config for this (device, N, K, weight dtype), chosen once per process by timing
    every config of the table in a CUDA graph over weights streamed from DRAM.

    Triton's own autotuner times each config by launching it from Python; for these 10-30 us
    kernels the launch costs as much as the kernel, and its picks on an H200 were close to
    random (the O projection got a config at 42.7 us whose graphed time is 15 us), which made
    L5-gemv slower than cuBLAS in the ladder."""
    n, k = weight.shape
    is_fp8 = weight.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)
    key = (weight.device.index, n, k, weight.dtype, x.dtype, scale is not None)
    if key in _M1_CHOICE:
        return _M1_CHOICE[key]
    triton, kernel, tables, _ = _kernels()
    if torch.cuda.is_current_stream_capturing():  # cannot time inside someone's capture
        return tables[is_fp8][0]
    weights = rotation(weight)
    y = torch.empty((1, n), device=x.device, dtype=x.dtype)
    timings = []
    first: torch.Tensor | None = None  # the table's first config: the fp32-FMA path
    for config in tables[is_fp8]:
        calls = [functools.partial(_launch_m1, triton, kernel, config, x, w, scale, y)
                 for w in weights]
        try:
            calls[0]()
            if first is None:
                first = y.float().clone()
            elif not _agrees(y, first):  # never pick a fast wrong variant
                REJECTED[key] = [*REJECTED.get(key, []), str(config)]
                continue
            timings.append((time_in_graph(calls, replays=5), config))
        except Exception:  # noqa: BLE001 - a config that does not compile or fit is skipped
            continue
    if not timings:
        raise RuntimeError(f"no GEMV config ran for N={n}, K={k}, {weight.dtype}")
    timings.sort(key=lambda t: t[0])
    M1_TIMINGS[key] = [(us, str(config)) for us, config in timings]
    best = timings[0][1]
    _M1_CHOICE[key] = best
    return best


def _launch_m1(triton: Any, kernel: Any, config: Any, x: torch.Tensor, weight: torch.Tensor,
               scale: torch.Tensor | None, y: torch.Tensor,
               residual: torch.Tensor | None = None, rms_eps: float = 0.0) -> None:
    n, k = weight.shape
    meta = dict(config.kwargs)
    kernel[(triton.cdiv(n, meta["BLOCK_N"]),)](
        x, weight, scale if scale is not None else y, y,
        residual if residual is not None else y, n, k, weight.stride(0), float(rms_eps),
        HAS_SCALE=scale is not None, ROW_SCALE=scale is not None and scale.numel() == n,
        IS_FP8=weight.dtype in (torch.float8_e4m3fn, torch.float8_e5m2), RMS=rms_eps > 0,
        RESIDUAL=residual is not None, X_BLOCK=triton.next_power_of_2(k) if rms_eps > 0 else 16,
        num_warps=config.num_warps, num_stages=config.num_stages, **meta)


def gemv_triton(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
                residual: torch.Tensor | None = None, rms_eps: float = 0.0) -> torch.Tensor:
    """x [M, K] (M <= 16), weight [N, K] contiguous, residual [M, N] -> [M, N] in x.dtype."""
    triton, kernel, _, gemv_small_m = _kernels()
    m, k = x.shape
    n = weight.shape[0]
    x = x.contiguous()
    residual = residual.contiguous() if residual is not None else None
    y = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if m == 1:
        config = m1_config(x, weight, scale)
        _launch_m1(triton, kernel, config, x, weight, scale, y, residual, rms_eps)
        return y
    has_scale = scale is not None
    scale_arg = scale if scale is not None else y  # unused pointer when HAS_SCALE is False
    row_scale = scale is not None and scale.numel() == n
    is_fp8 = weight.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)

    def grid(meta: dict[str, Any]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    gemv_small_m[grid](x, weight, scale_arg, y, residual if residual is not None else y, m, n,
                       k, x.stride(0), weight.stride(0), y.stride(0),
                       residual.stride(0) if residual is not None else 0, float(rms_eps),
                       HAS_SCALE=has_scale, ROW_SCALE=row_scale, IS_FP8=is_fp8,
                       RMS=rms_eps > 0, RESIDUAL=residual is not None)
    return y


@functools.cache
def gemv_op() -> Any:
    """The kernel as a torch custom op ``aiperf::gemv`` so torch.compile treats it as one
    opaque call (with a fake for shapes) and CUDA graphs capture it like any kernel."""

    @torch.library.custom_op("aiperf::gemv", mutates_args=())
    def gemv(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
             residual: torch.Tensor | None, rms_eps: float) -> torch.Tensor:
        if x.device.type == "cuda":
            return gemv_triton(x, weight, scale, residual, rms_eps)
        return gemv_reference(x, weight, scale, residual, rms_eps)

    @gemv.register_fake
    def _(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None,
          residual: torch.Tensor | None, rms_eps: float) -> torch.Tensor:
        return x.new_empty((x.shape[0], weight.shape[0]))

    return gemv
