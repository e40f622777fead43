"""`aiperf-workbench sweep` and `scale` (``workbench.api.sweep``): one session per point, a
table and a text plot.

sweep   any preset parameter (``--param batch=1,2,4,8``), the precision (``--precision
        fp32,bf16``: the dtype param) or the layer set (``--layers-sets "L0;L0,L2"``); several
        axes make a grid (their product).
scale   the same over GPU count (``--gpus 1,2,4``) under torchrun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli.arguments import param, param_values
from workbench.cli.main import stop_event


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", default="dense")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--layers", default="L0", help="layer stack (default L0)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per point")
    parser.add_argument("--export", type=Path, metavar="FILE.md", help="write table and plot")
    parser.add_argument("--quiet", action="store_true")


def register(subparsers: Any) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="run a workload over parameter values (a grid) and plot the result",
        description="One session per point of the grid of --param / --precision / "
        "--layers-sets values; prints a table and a text plot of throughput and latency "
        "against the first axis, the knee marked.")
    _add_common(sweep)
    sweep.add_argument("--param", type=param_values, action="append", default=[],
                       metavar="KEY=V1,V2,...", help="preset parameter values; repeatable")
    sweep.add_argument("--precision", metavar="fp32,bf16", help="dtypes to sweep")
    sweep.add_argument("--layers-sets", metavar='"L0;L0,L2"', help="layer stacks to sweep")
    sweep.add_argument("--nproc-per-node", type=int, default=1, help="ranks per point")
    sweep.set_defaults(handler=cmd_sweep)

    scale = subparsers.add_parser(
        "scale", help="run a workload over GPU counts under torchrun (scaling efficiency)",
        description="One torchrun session per GPU count; speedup and efficiency per GPU "
        "against the first count.")
    _add_common(scale)
    scale.add_argument("--gpus", required=True, metavar="1,2,4", help="GPU (rank) counts")
    scale.add_argument("--param", type=param, action="append", default=[],
                       metavar="KEY=VALUE", help="workload parameter; repeatable")
    scale.set_defaults(handler=cmd_scale)


def _settings(args: argparse.Namespace, params: dict[str, Any]) -> Any:
    from workbench.api.sweep import PointSettings

    return PointSettings(workload=args.workload, preset=args.preset, layers=args.layers,
                         device=args.device, repeat=args.repeat, warmup=args.warmup,
                         timeout_s=args.timeout, params=params)


def _emit(args: argparse.Namespace, text: str, what: str) -> None:
    from workbench.api.export import write_text
    from workbench.export.escape import term_text

    sys.stdout.write(term_text(text))
    if args.export:
        write_text(args.export, text)
        print(f"{what} written to {args.export}", file=sys.stderr)


def cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.api.sessions import open_store
    from workbench.api.sweep import build_axes, run_sweep
    from workbench.cli.progress import CliProgress

    axes = build_axes(list(args.param), args.precision, args.layers_sets)
    result = run_sweep(_settings(args, {}), axes, open_store(args.home), args.nproc_per_node,
                       on_event=CliProgress(quiet=args.quiet).on_event, cancel=stop_event())
    _emit(args, result.markdown(), "sweep")
    return 0 if result.ok else 1


def cmd_scale(args: argparse.Namespace) -> int:
    from workbench.api.sessions import open_store
    from workbench.api.sweep import parse_gpu_counts, run_scale
    from workbench.cli.progress import CliProgress

    gpus = parse_gpu_counts(args.gpus)
    result = run_scale(_settings(args, dict(args.param)), gpus, open_store(args.home),
                       on_event=CliProgress(quiet=args.quiet).on_event, cancel=stop_event())
    _emit(args, result.markdown(), "scaling table")
    return 0 if result.ok else 1
