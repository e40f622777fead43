"""Capture a real Kineto trace of an HF-transformers MoE model's generate() on a GPU.

Random weights from a config (no downloads): a Mixtral-architecture decoder with 64 experts,
top-6 routing (DeepSeek-like expert counts). The trace feeds the trace-engine benchmark
(benchmarks/trace_engine.py, ~100 MB target) and the MoE-dispatch advice test.

    python benchmarks/capture_hf_moe_trace.py --out DIR [--target-mb 100] [--tokens 16]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time


def build_model(layers: int, experts: int, top_k: int):
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=1408, num_hidden_layers=layers,
        num_attention_heads=16, num_key_value_heads=4, num_local_experts=experts,
        num_experts_per_tok=top_k, max_position_embeddings=4096,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = MixtralForCausalLM(config).to(torch.bfloat16).eval()
    return model


def capture(model, tokens: int, path: str) -> float:
    import torch
    from torch.profiler import ProfilerActivity, profile

    ids = torch.randint(0, 32000, (1, 64), device="cuda")
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, do_sample=False, min_new_tokens=4)  # warm-up
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                     record_shapes=True, with_flops=True) as prof:
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
    prof.export_chrome_trace(path)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--target-mb", type=float, default=100.0)
    ap.add_argument("--tokens", type=int, default=8, help="tokens of the first (sizing) capture")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=6)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = build_model(args.layers, args.experts, args.top_k)
    small = os.path.join(args.out, "hf_moe_generate_small.json")
    wall = capture(model, args.tokens, small)
    size_mb = os.path.getsize(small) / 1e6
    print(f"sizing capture: {args.tokens} tokens -> {size_mb:.1f} MB ({wall:.2f} s)", flush=True)
    tokens = max(args.tokens, int(args.tokens * args.target_mb / max(size_mb, 1e-3)))
    big = os.path.join(args.out, "hf_moe_generate.json")
    wall = capture(model, tokens, big)
    print(f"capture: {tokens} tokens -> {os.path.getsize(big) / 1e6:.1f} MB ({wall:.2f} s, "
          f"{tokens / wall:.1f} tok/s under the profiler)", flush=True)
    for path in (small, big):
        with open(path, "rb") as fi, gzip.open(path + ".gz", "wb", compresslevel=6) as fo:
            shutil.copyfileobj(fi, fo)
        os.remove(path)
        print(f"{path}.gz {os.path.getsize(path + '.gz') / 1e6:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
