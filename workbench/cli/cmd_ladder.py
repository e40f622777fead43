"""`aiperf-workbench ladder`: run the optimization ladder (``workbench.api.ladder``) and print
(and export) the table with per-step and cumulative speedups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli.arguments import param
from workbench.cli.main import stop_event


def register(subparsers: Any) -> None:
    ladder = subparsers.add_parser(
        "ladder", help="run the optimization ladder L0 .. all-on and tabulate speedups",
        description="Run L0, L0+L1, ... all-on (or the --layers-sets given), each as a stored "
        "session, with the parity guard against L0; print the ladder table and optionally "
        "export it as Markdown. Layers whose requirements are unmet (e.g. CUDA-only ones on a "
        "CPU) are shown as not applied, with the reason.")
    ladder.add_argument("--workload", default="dense")
    ladder.add_argument("--preset", default="tiny")
    ladder.add_argument("--layers-sets", default=None, metavar='"L0;L0,L1;..."',
                        help="semicolon-separated layer stacks (default: cumulative, one "
                        "layer per step)")
    ladder.add_argument("--mode", choices=["decode", "prefill"], help="measured step")
    ladder.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ladder.add_argument("--repeat", type=int, default=10)
    ladder.add_argument("--warmup", type=int, default=3)
    ladder.add_argument("--timeout", type=float, default=900.0, help="seconds per step")
    ladder.add_argument("--param", type=param, action="append", default=[],
                        metavar="KEY=VALUE", help="workload parameter; repeatable")
    ladder.add_argument("--export", type=Path, metavar="FILE.md", help="write the table")
    ladder.add_argument("--quiet", action="store_true")
    ladder.set_defaults(handler=cmd_ladder)


def cmd_ladder(args: argparse.Namespace) -> int:
    from sessions.records import RunStatus
    from workbench.api.export import write_text
    from workbench.api.ladder import (
        default_layer_sets,
        ladder_markdown,
        memory_line,
        run_ladder,
        select_layer_sets,
    )
    from workbench.api.sessions import open_store
    from workbench.cli.progress import CliProgress
    from workbench.export.escape import term_text
    from workloads.catalog import get_preset

    get_preset(args.workload, args.preset)
    params: dict[str, Any] = dict(args.param)
    if args.mode:
        params["mode"] = args.mode
    selections = select_layer_sets(args.layers_sets, args.workload) if args.layers_sets \
        else None
    sets = [s.names for s in selections] if selections else default_layer_sets(args.workload)
    skipped = [s.skipped for s in selections] if selections else None
    for name, why in sorted({(n, w) for s in skipped or [] for n, w in s.items()}):
        print(f"layer {name} skipped: {why}", file=sys.stderr)
    memory = memory_line(args.workload, args.preset, params)
    if memory:
        print(f"memory estimate: {memory}", file=sys.stderr)
    progress = CliProgress(quiet=args.quiet)
    records = run_ladder(args.workload, args.preset, sets, params, open_store(args.home),
                         device=args.device, repeat=args.repeat, warmup=args.warmup,
                         timeout_s=args.timeout, on_event=progress.on_event,
                         cancel=stop_event(), skipped=skipped)
    text = ladder_markdown(records, args.workload, args.preset, params, args.repeat)
    sys.stdout.write(term_text(text))
    if args.export:
        write_text(args.export, text)
        print(f"ladder written to {args.export}", file=sys.stderr)
    return 0 if all(r.status is RunStatus.OK for r in records) else 1
