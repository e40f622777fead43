"""Decode attention of one Llama-3.1-8B layer (32 query / 8 KV heads of 128) at contexts
128..32k: L3's split-KV Triton kernel against SDPA (cuDNN, flash, memory-efficient backends
over the valid prefix, GQA) and the masked SDPA call L3 made before (over the whole static
cache), as the share of copy bandwidth each reaches reading K and V once.

    python benchmarks/decode_attention.py [--contexts 128,...,32768] [--batches 1,8]
        [--out-dir benchmarks/results]

The floor of one call is its K and V bytes (2 x batch x 8 x context x 128 x element size)
over the copy bandwidth measured here (1 GiB device-to-device, read + write bytes). Every
variant is checked against an fp32 math-backend SDPA on fresh random inputs first (a variant
off by more than 1e-2 relative is recorded with its error, not timed). Timing: the call
repeated over rotating caches (3x the L2 in all, so K/V stream from DRAM as in a decode
step, where 32 layers' caches pass through) captured in one CUDA graph and replayed
(workloads.layers.triton_gemv.time_in_graph). At context 8192, batch 1, the kernel's block
size, warps, stages and split count are swept (the table the defaults came from). Writes
decode_attention-<gpu>.json; prints a table last. ~1-2 minutes on an H200.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from benchmarks.dense_ladder import copy_bandwidth_tb_s  # noqa: E402
from workloads.layers.attention import sdpa_attention  # noqa: E402
from workloads.layers.kv_cache import FP8_KV_DTYPE  # noqa: E402
from workloads.layers.triton_decode_attention import (  # noqa: E402
    DEFAULT_CONFIG,
    KernelConfig,
    choose_splits,
    decode_attention_triton,
)
from workloads.layers.triton_gemv import time_in_graph  # noqa: E402

HEADS, KV_HEADS, DIM = 32, 8, 128
BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}
MAX_ROTATION = 256


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def make_caches(batch: int, context: int, fp8: bool) -> tuple[list[Any], torch.Tensor | None]:
    """Enough (keys, values) static caches [B, 8, context + 64, 128] that one pass over them
    is 3x the L2 (at least 3); FP8 ones with a scale."""
    capacity = context + 64
    elt = 1 if fp8 else 2
    per_cache = 2 * batch * KV_HEADS * capacity * DIM * elt
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    count = min(MAX_ROTATION, max(3, -(-3 * l2 // per_cache)))
    scale = torch.tensor([0.05], device="cuda") if fp8 else None
    caches = []
    for _ in range(count):
        k = torch.randn(batch, KV_HEADS, capacity, DIM, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        if scale is not None:
            k, v = (t.float().div(scale).clamp(-448, 448).to(FP8_KV_DTYPE) for t in (k, v))
        caches.append((k, v))
    return caches, scale


def oracle(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, context: int,
           scale: torch.Tensor | None) -> torch.Tensor:
    keys, values = k[:, :, :context].float(), v[:, :, :context].float()
    if scale is not None:
        keys, values = keys * scale, values * scale
    group = HEADS // KV_HEADS
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q.float()[:, :, None],
                                              keys.repeat_interleave(group, 1),
                                              values.repeat_interleave(group, 1))[:, :, 0]


def variants(q: torch.Tensor, positions: torch.Tensor, context: int,
             scale: torch.Tensor | None) -> dict[str, Any]:
    """name -> fn(k, v) returning [B, H, D]."""
    out: dict[str, Any] = {
        "split-kv (L3 now)": lambda k, v: decode_attention_triton(q, k, v, positions, None,
                                                                  scale, 0)}
    if scale is not None:
        return out  # SDPA reads bf16 only: the FP8 cache would need a dequantized copy
    q4 = q[:, :, None]

    def prefix(backend: SDPBackend) -> Any:
        def call(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(
                    q4, k[:, :, :context], v[:, :, :context], enable_gqa=True)[:, :, 0]
        return call

    for name, backend in BACKENDS.items():
        out[f"sdpa {name} (prefix)"] = prefix(backend)
    out["sdpa masked (L3 before)"] = lambda k, v: sdpa_attention(q4, k, v, positions)[:, :, 0]
    return out


def run_case(batch: int, context: int, fp8: bool, copy: float) -> list[dict[str, Any]]:
    torch.manual_seed(context + batch)
    caches, scale = make_caches(batch, context, fp8)
    q = torch.randn(batch, HEADS, DIM, device="cuda", dtype=torch.bfloat16)
    positions = torch.tensor([context - 1], device="cuda")
    reference = oracle(q, *caches[0], context, scale)
    kv_bytes = 2 * batch * KV_HEADS * context * DIM * (1 if fp8 else 2)
    rows = []
    for name, fn in variants(q, positions, context, scale).items():
        row: dict[str, Any] = {"variant": name, "batch": batch, "context": context,
                               "kv": "fp8" if fp8 else "bf16", "kv_bytes": kv_bytes,
                               "rotation": len(caches)}
        try:
            err = rel(fn(*caches[0]), reference)
            row["rel_err"] = err
            if not err < 1e-2:
                row["error"] = f"rel err {err:.3g} against the fp32 reference: not timed"
            else:
                us = time_in_graph([functools.partial(fn, k, v) for k, v in caches], replays=10)
                row.update(us=us, tb_s=kv_bytes / (us * 1e-6) / 1e12,
                           share_of_copy=kv_bytes / (us * 1e-6) / 1e12 / copy)
        except Exception as exc:  # a backend that refuses the shape is a row, not a crash
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)
        shown = f"{row['us']:8.1f} us {row['share_of_copy']:6.1%}" if "us" in row \
            else row["error"][:70]
        print(f"b{batch:<3} ctx {context:6d} {row['kv']} {name:26s} {shown}", flush=True)
    del caches
    torch.cuda.empty_cache()
    return rows


def sweep(copy: float) -> list[dict[str, Any]]:
    """Block size / warps / stages / splits of the split-KV kernel at context 8192, batch 1."""
    context = 8192
    caches, _ = make_caches(1, context, False)
    q = torch.randn(1, HEADS, DIM, device="cuda", dtype=torch.bfloat16)
    positions = torch.tensor([context - 1], device="cuda")
    reference = oracle(q, *caches[0], context, None)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    auto = choose_splits(1, KV_HEADS, context + 64, sms)
    kv_bytes = 2 * KV_HEADS * context * DIM * 2
    rows = []
    configs = [KernelConfig(n, w, s) for n in (32, 64, 128) for w in (4, 8) for s in (2, 3)]
    trials = [(c, auto) for c in configs] + [(DEFAULT_CONFIG, s) for s in
                                             (max(1, auto // 2), auto * 2, sms // KV_HEADS)]
    for config, splits in trials:
        fn = functools.partial(decode_attention_triton, q, positions=positions,
                               block_table=None, kv_scale=None, window=0, num_splits=splits,
                               config=config)
        row: dict[str, Any] = {"config": config._asdict(), "splits": splits}
        try:
            row["rel_err"] = rel(fn(k_cache=caches[0][0], v_cache=caches[0][1]), reference)
            us = time_in_graph([functools.partial(fn, k_cache=k, v_cache=v) for k, v in caches],
                               replays=10)
            row.update(us=us, share_of_copy=kv_bytes / (us * 1e-6) / 1e12 / copy)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        rows.append(row)
        print(f"sweep {config} splits {splits:3d}: "
              + (f"{row['us']:.1f} us {row['share_of_copy']:.1%}" if "us" in row
                 else row["error"][:80]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", default="128,512,2048,8192,16384,32768")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--fp8-contexts", default="2048,8192,32768")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    copy = copy_bandwidth_tb_s()["median"]
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    device = torch.cuda.get_device_name()
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    path = args.out_dir / f"decode_attention-{slug}.json"
    payload: dict[str, Any] = {
        "benchmark": "decode_attention", "command": "python " + " ".join(sys.argv),
        "device": device, "torch": torch.__version__, "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip() or None,
        "copy_bandwidth_tb_s": copy, "shape": {"heads": HEADS, "kv_heads": KV_HEADS,
                                               "head_dim": DIM},
        "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
        "rows": rows, "sweep": [], "failures": failures,
        "notes": "us per call, CUDA-graph replay over rotating caches (mean of 10 replays); "
                 "share_of_copy = K+V bytes read / time / copy bandwidth; rel_err against "
                 "fp32 math SDPA over the same (dequantized) K/V"}

    def save() -> None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    cases = [(b, int(c), False) for b in map(int, args.batches.split(","))
             for c in args.contexts.split(",")]
    cases += [(1, int(c), True) for c in args.fp8_contexts.split(",") if c.strip()]
    for batch, context, fp8 in cases:
        try:
            rows += run_case(batch, context, fp8, copy)
        except Exception as exc:  # e.g. out of memory at a large batch x context
            traceback.print_exc()
            failures[f"b{batch} ctx {context} {'fp8' if fp8 else 'bf16'}"] = \
                f"{type(exc).__name__}: {exc}"
            torch.cuda.empty_cache()
        save()
    if not args.no_sweep:
        try:
            payload["sweep"] = sweep(copy)
        except Exception as exc:
            failures["sweep"] = f"{type(exc).__name__}: {exc}"
        save()
    print(f"\ncopy {copy:.2f} TB/s; decode attention, share of copy bandwidth (us):")
    variants_seen = list(dict.fromkeys(r["variant"] for r in rows))
    print(f"{'case':22s}" + "".join(f"{v[:18]:>20s}" for v in variants_seen))
    for key in dict.fromkeys((r["batch"], r["context"], r["kv"]) for r in rows):
        cells = []
        for variant in variants_seen:
            row = next((r for r in rows if (r["batch"], r["context"], r["kv"]) == key
                        and r["variant"] == variant), None)
            cells.append("" if row is None else ("err" if "us" not in row else
                         f"{row['share_of_copy']:5.0%} ({row['us']:.0f})"))
        print(f"b{key[0]} ctx {key[1]:<6d} {key[2]:5s}   " + "".join(f"{c:>20s}" for c in cells))
    print(f"wrote {path}")
    return 0 if not failures and all(math.isfinite(r.get("rel_err", 0.0)) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
