"""The fused decode-time expert GEMV (workloads.layers.moe_gemv) against its bytes, per config.

    python benchmarks/moe_gemv.py [--out benchmarks/results]

Shapes: gpt-oss 20b at batch 1 (32 experts top-4, hidden 2880, expert width 2880) and moe/full
at batch 8 (64 experts top-6, hidden 2048, width 1408), bf16 and FP8 weights. Each call reads
the rows of its distinct routed experts once (gate + up + down rows, FP8 scales), so bytes per
call = distinct experts x expert bytes. Timing: 16 calls with different random routings
captured back to back in one CUDA graph and replayed (no launch gaps; consecutive calls read
other experts, so the weights come from DRAM), median of 5 replays; the share is against a
1 GiB device copy measured here. Also the torch paths at the same shapes for comparison:
sorted dispatch + torch._grouped_mm (bf16) / torch._scaled_grouped_mm (FP8). Prints a table;
writes benchmarks/results/moe_gemv-<gpu>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workloads import calibrate  # noqa: E402
from workloads.layers import moe_experts as mx  # noqa: E402
from workloads.layers import moe_gemv as mg  # noqa: E402

SHAPES = {"gptoss-20b-b1": (1, 4, 32, 2880, 2880), "moe-full-b8": (8, 6, 64, 2048, 1408)}
CONFIGS = [mg.GemvConfig(*c) for c in ((16, 256, 4, 2), (8, 512, 4, 2), (16, 512, 4, 2),
                                       (32, 256, 4, 2), (16, 256, 4, 3), (8, 256, 2, 2),
                                       (16, 1024, 8, 2), (32, 512, 8, 2))]
CALLS = 16


def graph_time_us(calls: list[Any]) -> float:
    for call in calls[:2]:
        call()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    times = []
    for _ in range(6):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(calls))
    return statistics.median(times[1:])


def bench_shape(name: str, fp8: bool, copy_bw: float) -> list[dict[str, Any]]:
    tokens, top_k, experts, hidden, inter = SHAPES[name]
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    w13 = (torch.randn(experts, 2 * inter, hidden, device=dev, generator=g) / 50).bfloat16()
    w2 = (torch.randn(experts, hidden, inter, device=dev, generator=g) / 40).bfloat16()
    b13 = torch.zeros(experts, 2 * inter, device=dev, dtype=torch.bfloat16)
    b2 = torch.zeros(experts, hidden, device=dev, dtype=torch.bfloat16)
    s13 = s2 = None
    if fp8:
        w13, s13 = mx.quantize_rows(w13)
        w2, s2 = mx.quantize_rows(w2)
    per_expert = (w13[0].numel() + w2[0].numel()) * w13.element_size() \
        + (4 * (2 * inter + hidden) if fp8 else 0)
    x = torch.randn(tokens, hidden, device=dev, generator=g).bfloat16()
    routings = [torch.rand(tokens, experts, device=dev, generator=g).topk(top_k, -1).indices
                for _ in range(CALLS)]
    gate = torch.rand(tokens, top_k, device=dev, generator=g).bfloat16()
    moved = statistics.mean(r.unique().numel() for r in routings) * per_expert
    rows = []
    for cfg in CONFIGS:
        calls = [lambda r=r, cfg=cfg: mg.experts_gemv_triton(x, r, gate, w13, w2, b13, b2,
                                                              s13, s2, "gptoss", cfg)
                 for r in routings]
        try:
            us = graph_time_us(calls)
        except Exception as exc:  # a config that does not compile or fit is a row note
            rows.append({"shape": name, "fp8": fp8, "config": cfg._asdict(),
                         "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        rows.append({"shape": name, "fp8": fp8, "config": cfg._asdict(), "us": us,
                     "bytes": moved, "share_of_copy_bw": moved / (us * 1e-6) / copy_bw})
    ew = mx.ExpertWeights(None if fp8 else w13, None if fp8 else w2, b13, b2, "gptoss",
                          w13 if fp8 else None, s13, w2 if fp8 else None, s2)
    try:
        calls = [lambda r=r: mx.experts_sorted(x, r, gate, ew, "grouped_mm") for r in routings]
        us = graph_time_us(calls)
        rows.append({"shape": name, "fp8": fp8, "config": "sorted + grouped GEMM (torch)",
                     "us": us, "bytes": moved, "share_of_copy_bw": moved / (us * 1e-6) / copy_bw})
    except Exception as exc:
        rows.append({"shape": name, "fp8": fp8, "config": "sorted + grouped GEMM (torch)",
                     "error": f"{type(exc).__name__}: {exc}"[:200]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    dev = torch.device("cuda")
    copy_bw = calibrate._copy_bytes_per_s(1 << 30, dev, 3, 20)
    torch.cuda.empty_cache()
    rows: list[dict[str, Any]] = []
    for name in SHAPES:
        for fp8 in (False, True):
            rows += bench_shape(name, fp8, copy_bw)
            torch.cuda.empty_cache()
    device = torch.cuda.get_device_name(dev)
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"moe_gemv-{slug}.json"
    path.write_text(json.dumps({"benchmark": "moe_gemv", "device": device,
                                "torch": torch.__version__, "copy_bytes_per_s": copy_bw,
                                "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}; copy bandwidth {copy_bw / 1e12:.2f} TB/s")
    for row in rows:
        cfg = row["config"] if isinstance(row["config"], str) else \
            "BN{block_n} BK{block_k} w{num_warps} s{num_stages}".format(**row["config"])
        shown = row.get("error") or f"{row['us']:8.1f} us  {row['share_of_copy_bw']:.0%}"
        print(f"{row['shape']:14} {'fp8 ' if row['fp8'] else 'bf16'} {cfg:32} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
