"""M=1 weight GEMMs of the Llama-3.1-8B decode step: cuBLAS (F.linear) vs the Triton GEMV of
L5-gemv, bf16 and FP8 e4m3 (per-row scales), as achieved DRAM bandwidth per shape.

    python benchmarks/gemv.py [--out-dir benchmarks/results]

Batch-1 decode reads every weight once per token, so each GEMM's floor is its weight bytes
over the device's copy bandwidth (measured here: 1 GiB device-to-device copy, read + write
bytes). Shapes are those of one decoder layer after L2's fusions (QKV 6144x4096, O 4096x4096,
gate-up 28672x4096, down 4096x14336) and the LM head (128256x4096). Every variant is checked
against an fp64 reference on fresh random inputs before it is timed. Timing: the GEMV launched
back to back over rotating weight copies (3x the L2 in all, so every launch reads DRAM),
captured in one CUDA graph and replayed 20 times: what the decode graph sees, without the
Python launch cost that dominated do_bench for these 10-30 us kernels (see m1_config). Each
Triton row also lists every config's graphed time, as the tuner saw them (FP8: the fp32-FMA
mode 0 and the packed-fp16 modes 1 and 2 of kernels.gemv), and any config rejected for
disagreeing with the first. The per-token
sum (32 layers + head) is the GEMV-only floor of a decode step: the ladder's L5-gemv step can
be no faster than it. Writes gemv-<device>.json and prints a table last. ~1 minute.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.dense_ladder import copy_bandwidth_tb_s  # noqa: E402
from workloads.layers.lowbit import quantize_fp8  # noqa: E402
from workloads.layers.triton_gemv import (  # noqa: E402
    M1_TIMINGS,
    REJECTED,
    gemv_triton,
    m1_config,
    rotation,
    time_in_graph,
)

SHAPES = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096),
          "down": (4096, 14336), "lm_head": (128256, 4096)}
PER_TOKEN = {"qkv": 32, "o": 32, "gate_up": 32, "down": 32, "lm_head": 1}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.manual_seed(0)
    copy = copy_bandwidth_tb_s()["median"]
    rows: list[dict[str, Any]] = []
    for name, (n, k) in SHAPES.items():
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ w.double().t()
        wq, scale = quantize_fp8(w, per_row=True)
        ref_q = (x.double() @ wq.double().t()) * scale.double()[None, :]
        variants = {
            "cublas_bf16": (lambda w, x=x: F.linear(x, w), w, None, ref, n * k * 2),
            "triton_bf16": (lambda w, x=x: gemv_triton(x, w, None), w, None, ref, n * k * 2),
            "triton_fp8": (lambda w, x=x, s=scale: gemv_triton(x, w, s), wq, scale, ref_q, n * k),
        }
        for variant, (fn, weight, sc, reference, nbytes) in variants.items():
            out = fn(weight)  # for Triton: picks the config (graph-timed, see m1_config)
            err = rel_err(out, reference.float())
            weights = rotation(weight)
            us = time_in_graph([functools.partial(fn, wi) for wi in weights], replays=20)
            config, table, key = None, None, None
            if variant.startswith("triton"):
                key = (weight.device.index, n, k, weight.dtype, x.dtype, sc is not None)
                config = str(m1_config(x, weight, sc))
                table = M1_TIMINGS.get(key)
            tb_s = nbytes / (us / 1e6) / 1e12
            rows.append({"shape": name, "n": n, "k": k, "variant": variant, "us": us,
                         "tb_s": tb_s, "share_of_copy": tb_s / copy, "rel_err": err,
                         "config": config, "config_timings_us": table,
                         "rejected_configs": REJECTED.get(key) if variant.startswith("triton")
                         else None, "launches_per_replay": len(weights)})
            print(f"{name:8s} {variant:12s} {us:8.1f} us {tb_s:5.2f} TB/s "
                  f"({tb_s / copy:4.0%} of copy) err {err:.1e} {config or ''}", flush=True)
            if table:
                print("    configs (us): " + ", ".join(f"{t:.1f}" for t, _ in table),
                      flush=True)
        del w, wq
        torch.cuda.empty_cache()
    per_token: dict[str, float] = {}
    for variant in ("cublas_bf16", "triton_bf16", "triton_fp8"):
        us = sum(r["us"] * PER_TOKEN[r["shape"]] for r in rows if r["variant"] == variant)
        per_token[variant] = us
    device = torch.cuda.get_device_name()
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    payload = {
        "benchmark": "gemv", "command": "python " + " ".join(sys.argv), "device": device,
        "torch": torch.__version__, "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip() or None,
        "copy_bandwidth_tb_s": copy, "rows": rows,
        "gemv_us_per_token": per_token,
        "gemv_only_tok_s_ceiling": {v: 1e6 / us for v, us in per_token.items()},
        "notes": "CUDA-graph replay over rotating weights (mean of 20 replays); bytes = weight bytes only (x and y "
                 "are < 0.1% of them); rel_err = ||out - ref|| / ||ref|| against fp64 on the "
                 "same (quantized, for fp8) weights",
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"gemv-{slug}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\ncopy {copy:.2f} TB/s; GEMV time per token (32 layers + head):")
    for variant, us in per_token.items():
        print(f"  {variant:12s} {us / 1e3:6.2f} ms -> at most {1e6 / us:6.1f} tok/s")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
