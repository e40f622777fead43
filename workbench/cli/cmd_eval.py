"""`aiperf-workbench eval --perplexity TOKENS_FILE` (``workbench.api.evaluate``): accuracy per
layer set, printed as one row per set. Exit 1 when a layer set moves perplexity beyond the
tolerance against the first set (the accuracy regression the check exists to catch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.cli.arguments import param
from workbench.cli.main import stop_event
from workbench.cli.output import write_output


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "eval", help="perplexity of a model on a token file, per layer set",
        description="Sliding-window perplexity (--seq-len window, --stride step; every token "
        "after the first scored once) on a pre-tokenized file: .npy, .bin (raw ids) or text "
        "of ids. Each layer set is compared with the first; a change beyond --tolerance "
        "fails (exit 1).")
    parser.add_argument("--perplexity", required=True, type=Path, metavar="TOKENS_FILE")
    parser.add_argument("--seq-len", type=int, default=1024, help="window length (default 1024)")
    parser.add_argument("--stride", type=int, default=256, help="window step (default 256)")
    parser.add_argument("--layers-sets", default="L0;L0,L1", metavar="SETS",
                        help="layer sets separated by ';', the first is the baseline "
                        "(default 'L0;L0,L1')")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="allowed |ppl/ppl_baseline - 1| (default 0.01 = 1%%)")
    parser.add_argument("--workload", default="dense")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--target", default="", metavar="FILE.py:build|MODULE:build|NAME")
    parser.add_argument("--checkpoint", default="", metavar="DIR",
                        help="local HF-layout checkpoint (config.json + *.safetensors)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", help="float32 | bfloat16 | float16 (overrides preset/config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", type=param, action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--token-dtype", default="uint16",
                        choices=["uint16", "uint32", "int32", "int64"],
                        help="id type of a .bin token file (default uint16)")
    parser.add_argument("--max-tokens", type=int, help="use only the first N tokens")
    parser.add_argument("--simulate-bug", choices=["bf16", "fp8"],
                        help="self-check: round the logits of every set after the first to "
                        "this type (a deliberate precision bug the threshold must catch)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, metavar="FILE", help="result as JSON ('-' = stdout)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from workbench.api.evaluate import build_eval, eval_exit_code, run_eval
    from workbench.api.sessions import open_store
    from workbench.cli.progress import CliProgress

    params: dict[str, Any] = dict(args.param)
    if args.dtype:
        params["dtype"] = args.dtype
    run_spec, settings = build_eval(
        args.perplexity, args.layers_sets, args.seq_len, args.stride, args.tolerance,
        workload=args.workload, preset=args.preset, target=args.target,
        checkpoint=args.checkpoint, device=args.device, seed=args.seed, params=params,
        token_dtype=args.token_dtype, max_tokens=args.max_tokens,
        simulate_bug=args.simulate_bug or "")
    record, result = run_eval(run_spec, settings, open_store(args.home), args.timeout,
                              on_event=CliProgress(quiet=args.quiet).on_event,
                              cancel=stop_event())
    _print_eval(record, result)
    if args.json:
        from workbench.export.json_export import dumps

        write_output(args.json, dumps(record.to_dict()))
    return eval_exit_code(record, result)


def _print_eval(record: Any, result: dict[str, Any]) -> None:
    print(f"session {record.id}: {record.status}" + (f" — {record.error}" if record.error
                                                     else ""))
    sets = result.get("sets") or []
    if not sets:
        return
    print(f"  {result['tokens']} tokens, seq_len {result['seq_len']}, stride "
          f"{result['stride']}, {result['windows']} windows, tolerance "
          f"{result['tolerance']:.2%}" + (f", SIMULATED BUG: logits rounded to "
                                          f"{result['simulate_bug']}"
                                          if result.get("simulate_bug") else ""))
    print(f"  {'layers':<24} {'perplexity':>12} {'nll/token':>10} {'vs base':>9}  check")
    for entry in sets:
        print(f"  {','.join(entry['layers']):<24} {entry['ppl']:>12.4f} "
              f"{entry['nll_per_token']:>10.5f} {entry['rel_change']:>+9.3%}  "
              f"{'ok' if entry['ok'] else 'FAIL'}")
