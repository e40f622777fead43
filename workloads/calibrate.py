"""Measure the roofline ceilings of this device with torch: ``python -m workloads.calibrate --out FILE``.

GPU: GEMM throughput in bf16, fp8 (``torch._scaled_mm``, compute capability >= 8.9), tf32 and
fp32, and device-to-device copy bandwidth (bytes read + bytes written). CPU: fp32 GEMM and
memcpy bandwidth. Each figure is the median of ``repeats`` timed runs after warm-up (CUDA
events on the GPU), on random data — zeros would let the hardware skip work and overstate.

Writes one JSON object (analyzers.ceilings.ceilings_from_calibration reads it): device_name,
driver, device_kind, cc, gemm_flops {precision: FLOP/s or null}, copy_bytes_per_s, method,
errors. A precision the device cannot run is null with the reason in ``errors``.
No pandas here: this runs in the workload environment.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workloads.environment import collect_env


def _time_gpu(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    """Median seconds of one call, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return statistics.median(times)


def _time_cpu(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _gemm_flops(dtype_name: str, n: int, device: torch.device, warmup: int,
                repeats: int) -> float:
    flop = 2.0 * n * n * n
    gen = torch.Generator(device=device).manual_seed(0)
    if dtype_name == "fp8":
        a = torch.randn(n, n, device=device, generator=gen).to(torch.float8_e4m3fn)
        # _scaled_mm wants the second operand column-major.
        b = torch.randn(n, n, device=device, generator=gen).to(torch.float8_e4m3fn).t()
        one = torch.tensor(1.0, device=device)

        def run() -> Any:
            return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32,
                 "fp32": torch.float32}[dtype_name]
        a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)

        def run() -> Any:
            return a @ b

    if device.type != "cuda":
        return flop / _time_cpu(run, warmup, repeats)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
    try:
        return flop / _time_gpu(run, warmup, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _copy_bytes_per_s(nbytes: int, device: torch.device, warmup: int, repeats: int) -> float:
    gen = torch.Generator(device=device).manual_seed(1)
    src = torch.randn(nbytes // 4, device=device, generator=gen)
    dst = torch.empty_like(src)
    timer = _time_gpu if device.type == "cuda" else _time_cpu
    secs = timer(lambda: dst.copy_(src), warmup, repeats)
    return 2.0 * src.numel() * src.element_size() / secs  # read + write


def calibrate(device: torch.device, gemm_n: int = 8192, copy_bytes: int = 1 << 30,
              warmup: int = 5, repeats: int = 20) -> dict[str, Any]:
    """Measure and return the calibration record (JSON-able)."""
    env = collect_env(device)
    result: dict[str, Any] = {
        "device_name": env.get("device_name"), "driver": env.get("driver"),
        "device_kind": device.type, "cc": env.get("cc"), "sm_count": env.get("sm_count"),
        "torch": env.get("torch"), "cuda": env.get("cuda"),
        "gemm_flops": {}, "copy_bytes_per_s": None, "errors": {},
        "method": {"gemm_n": gemm_n, "copy_bytes": copy_bytes, "warmup": warmup,
                   "repeats": repeats, "statistic": "median", "data": "randn"},
    }
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        precisions = ["bf16", "fp8", "tf32", "fp32"]
        if (major, minor) < (8, 9):
            result["errors"]["fp8"] = f"compute capability {major}.{minor} < 8.9: no FP8 GEMM"
            precisions.remove("fp8")
    else:
        precisions = ["fp32"]
        gemm_n = min(gemm_n, 2048)  # a CPU GEMM of 8192^3 takes minutes
        copy_bytes = min(copy_bytes, 256 << 20)
        result["method"].update(gemm_n=gemm_n, copy_bytes=copy_bytes)
    for name in ("bf16", "fp8", "tf32", "fp32"):
        result["gemm_flops"].setdefault(name, None)
    for name in precisions:
        try:
            result["gemm_flops"][name] = _gemm_flops(name, gemm_n, device, warmup, repeats)
        except (RuntimeError, TypeError, AttributeError) as exc:  # unsupported on this build
            result["errors"][name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:
        result["copy_bytes_per_s"] = _copy_bytes_per_s(copy_bytes, device, warmup, repeats)
    except RuntimeError as exc:
        result["errors"]["copy"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.calibrate", description=__doc__)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    parser.add_argument("--gemm-n", type=int, default=8192)
    parser.add_argument("--copy-mib", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("calibrate: no CUDA device visible; use --device cpu", file=sys.stderr)
        return 2
    record = calibrate(device, gemm_n=args.gemm_n, copy_bytes=args.copy_mib << 20,
                       warmup=args.warmup, repeats=args.repeats)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(out)  # atomic: a reader never sees half a file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
