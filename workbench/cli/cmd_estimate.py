"""`aiperf-workbench gpt4-arch`: the GPT-4-scale MoE memory / GPU-count ESTIMATE.

Analytic only (``workloads.gpt4_arch``): nothing runs on a GPU and no session is stored. The
output says so in its first line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli.arguments import param

BANNER = ("ESTIMATE (analytic, not measured) — GPT-4-scale MoE; default architecture = public "
          "speculation (~1.8T params, 16 experts top-2), not an official spec")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gpt4-arch", help="estimate memory and the minimum GPU count of a GPT-4-scale MoE",
        description="An analytic ESTIMATE: parameters, KV cache, activations and "
        "the minimum GPU count for a TP/PP/EP/CP layout, precision and context (128K with "
        "context parallelism). Architecture figures are the public speculation about GPT-4; "
        "override any with --arch KEY=VALUE (layers, hidden, heads, kv_heads, head_dim, "
        "experts, top_k, expert_ff, mlp_matrices, vocab).")
    parser.add_argument("--tp", type=int, default=8, help="tensor parallel (default 8)")
    parser.add_argument("--pp", type=int, default=None,
                        help="pipeline stages; default: the minimum that fits")
    parser.add_argument("--ep", type=int, default=8, help="expert parallel (default 8)")
    parser.add_argument("--cp", type=int, default=1, help="context parallel (default 1)")
    parser.add_argument("--precision", default="fp8", help="weights: bf16 | fp8 | fp4 (default fp8)")
    parser.add_argument("--kv-precision", default=None, help="KV cache (default: --precision, "
                        "bf16 when that is fp4)")
    parser.add_argument("--context", type=int, default=131072, help="tokens (default 131072)")
    parser.add_argument("--batch", type=int, default=1, help="concurrent sequences (default 1)")
    parser.add_argument("--gpu-mem-gib", type=float, default=80.0,
                        help="memory per GPU in GiB (default 80, an H100; B200 ~ 180)")
    parser.add_argument("--arch", type=param, action="append", default=[], metavar="KEY=VALUE",
                        help="architecture override; repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=cmd_gpt4_arch)


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024 ** 3:,.1f} GiB"


def cmd_gpt4_arch(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from workloads import gpt4_arch as ga

    arch = ga.arch_from_params(dict(args.arch))
    kv = args.kv_precision or ("bf16" if args.precision == "fp4" else args.precision)
    layout = ga.Layout(tp=args.tp, pp=args.pp or 1, ep=args.ep, cp=args.cp,
                       precision=args.precision, kv_precision=kv, context=args.context,
                       batch=args.batch, gpu_mem_gib=args.gpu_mem_gib)
    if args.pp is None:
        min_pp, result = ga.minimum_pipeline(arch, layout)
        if result is None:
            result = ga.estimate(arch, replace(layout, pp=arch.layers))
    else:
        result = ga.estimate(arch, layout)
        min_pp, _ = ga.minimum_pipeline(arch, layout)
    scenarios = ga.scenario_rows(arch, layout)
    if args.json:
        json.dump({"label": BANNER, "arch": asdict(arch), "layout": asdict(layout),
                   "estimate": result.to_dict(), "min_pp": min_pp, "scenarios": scenarios},
                  sys.stdout, indent=2)
        print()
        return 0
    print(BANNER)
    print(f"architecture: {arch.layers} layers, hidden {arch.hidden}, {arch.heads} heads / "
          f"{arch.kv_heads} KV heads x {arch.head_dim}, {arch.experts} experts top-{arch.top_k},"
          f" expert FFN {arch.expert_ff}, vocab {arch.vocab}")
    rows = [
        ("parameters total", f"{result.params_total / 1e12:.3f} T"),
        ("parameters active per token", f"{result.params_active / 1e9:.1f} B"),
        ("  attention / experts / embeddings",
         f"{result.params_attention / 1e9:.1f} B / {result.params_experts / 1e9:.1f} B / "
         f"{result.params_embedding / 1e9:.2f} B"),
        (f"weights ({layout.precision})", _gib(result.weights_bytes_total)),
        (f"KV cache per token ({kv})", f"{result.kv_bytes_per_token / 1024:,.1f} KiB"),
        (f"KV cache, {layout.batch} x {layout.context:,} tokens", _gib(result.kv_bytes_total)),
        ("layout", f"TP {layout.tp} x PP {result.gpus // (layout.tp * layout.cp)} x CP "
                   f"{layout.cp}, EP {layout.ep} = {result.gpus} GPUs "
                   f"({result.layers_per_stage} layers per stage)"),
        ("per GPU: weights", _gib(result.weights_per_gpu)),
        ("per GPU: KV cache", _gib(result.kv_per_gpu)),
        ("per GPU: activations (prefill, one layer)", _gib(result.activations_per_gpu)),
        ("per GPU: overhead", _gib(result.overhead_per_gpu)),
        ("per GPU: total / budget", f"{_gib(result.total_per_gpu)} / "
                                    f"{_gib(result.budget_per_gpu)}"),
        ("fits", "yes" if result.fits else "NO"),
        ("minimum GPUs for this TP/EP/CP",
         "does not fit at any PP" if min_pp is None
         else f"{layout.tp * min_pp * layout.cp} (PP {min_pp})"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("\nscenarios (minimum GPUs; TP fixed, EP as large as the experts allow):")
    print(f"  {'context':>8} {'precision':>9} {'CP':>3} {'EP':>3} {'PP':>4} {'GPUs':>5} "
          f"{'per GPU':>11}  note")
    for row in scenarios:
        per_gpu = row.get("per_gpu_gib")
        print(f"  {row['context']:>8,} {row['precision']:>9} {row['cp']:>3} {row['ep']:>3} "
              f"{row['min_pp'] if row['min_pp'] is not None else 'n/a':>4} "
              f"{row['min_gpus'] if row['min_gpus'] is not None else 'n/a':>5} "
              f"{f'{per_gpu:.1f} GiB' if per_gpu is not None else 'n/a':>11}  {row['note']}")
    if args.pp is not None and not result.fits:
        return 1
    return 0

