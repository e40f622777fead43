"""`aiperf-workbench sweep` and `scale`: one session per point, a table and a text plot.

sweep   any preset parameter (``--param batch=1,2,4,8``), the precision (``--precision
        fp32,bf16``: the dtype param) or the layer set (``--layers-sets "L0;L0,L2"``); several
        axes make a grid (their product). Throughput and latency are plotted against the first
        axis, one plot per combination of the others, with the knee of the throughput marked.
scale   the same over GPU count (``--gpus 1,2,4``): each point runs under torchrun with
        ``--nproc-per-node`` = the count; speedup and efficiency per GPU against the first.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

from workbench.cli.main import stop_event
from workloads.errors import WorkbenchError

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16",
              "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _cast(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """"batch=1,2,4" -> ("batch", [1, 2, 4])."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,..., got {text!r}")
    key, values = text.split("=", 1)
    parsed = [_cast(v.strip()) for v in values.split(",") if v.strip()]
    if not key.strip() or not parsed:
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,..., got {text!r}")
    return key.strip(), parsed


def build_axes(args: argparse.Namespace) -> dict[str, list[Any]]:
    from workloads.catalog import parse_layers

    axes: dict[str, list[Any]] = {}
    for key, values in args.param:
        if key in axes:
            raise WorkbenchError(f"--param {key} given twice", "list all values in one")
        axes[key] = values
    if args.precision:
        if "dtype" in axes:
            raise WorkbenchError("--precision and --param dtype=... both given")
        try:
            axes["dtype"] = [PRECISIONS[p.strip()] for p in args.precision.split(",") if p.strip()]
        except KeyError as exc:
            raise WorkbenchError(f"unknown precision {exc.args[0]!r}",
                                 "choose from fp32, bf16, fp16") from None
    if args.layers_sets:
        axes["layers"] = [parse_layers(part) for part in args.layers_sets.split(";")
                          if part.strip()]
    if not axes:
        raise WorkbenchError("nothing to sweep",
                             "give --param KEY=V1,V2,..., --precision or --layers-sets")
    return axes


def grid(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


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
    sweep.add_argument("--param", type=parse_axis, action="append", default=[],
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
    scale.add_argument("--param", type=_fixed_param, action="append", default=[],
                       metavar="KEY=VALUE", help="workload parameter; repeatable")
    scale.set_defaults(handler=cmd_scale)


def _fixed_param(text: str) -> tuple[str, Any]:
    from workbench.cli.main import _param

    return _param(text)


def run_point(args: argparse.Namespace, store: Any, params: dict[str, Any], layers: list[str],
              nproc: int, label: str, on_event: Any) -> Any:
    from profilers.runner import run
    from workloads.spec import RunSpec

    spec = RunSpec(workload=args.workload, preset=args.preset, layers=layers, profiler="timer",
                   params=params, repeat=args.repeat, warmup=args.warmup,
                   timeout_s=args.timeout, device=args.device, label=label,
                   telemetry=False, nproc_per_node=nproc)
    return run(spec, store, on_event=on_event, cancel=stop_event())


def _metrics(record: Any) -> tuple[float | None, float | None]:
    m = record.metrics
    return (m.get("latency_ms") or {}).get("median"), m.get("tokens_per_s")


def _emit(args: argparse.Namespace, text: str, what: str) -> None:
    from workbench.export.escape import term_text

    sys.stdout.write(term_text(text))
    if args.export:
        from workbench.cli.commands import _write_output

        _write_output(args.export, text)
        print(f"{what} written to {args.export}", file=sys.stderr)


def cmd_sweep(args: argparse.Namespace) -> int:
    from analyzers.scaling import knee_index, speedups
    from sessions.store import SessionStore
    from workbench.cli.progress import CliProgress
    from workbench.export.sweep_md import point_label, render_sweep
    from workloads.catalog import get_preset, parse_layers

    get_preset(args.workload, args.preset)
    axes = build_axes(args)
    points = grid(axes)
    store, progress = SessionStore(args.home), CliProgress(quiet=args.quiet)
    base_layers = parse_layers(args.layers)
    rows: list[dict[str, Any]] = []
    for point in points:
        params = {k: v for k, v in point.items() if k != "layers"}
        record = run_point(args, store, params, point.get("layers", base_layers),
                           args.nproc_per_node, f"sweep {point_label(point)}", progress.on_event)
        latency, throughput = _metrics(record)
        rows.append({"point": point, "status": record.status, "latency_ms": latency,
                     "tokens_per_s": throughput, "run_id": record.id, "speedup": None})
    first_axis, others = next(iter(axes)), list(axes)[1:]
    series = []
    for combo in itertools.product(*(range(len(axes[o])) for o in others)):
        fixed = {o: axes[o][i] for o, i in zip(others, combo, strict=True)}
        members = [r for r in rows if all(r["point"][o] == v for o, v in fixed.items())]
        throughput = [r["tokens_per_s"] for r in members]
        knee = knee_index(throughput)
        for r, s in zip(members, speedups(throughput), strict=True):
            r["speedup"] = s
        if knee is not None:
            members[knee]["knee"] = True
        series.append({"title": f"{first_axis} sweep" + (f" ({point_label(fixed)})" if fixed
                                                          else ""),
                       "labels": [point_label({first_axis: r["point"][first_axis]}).split(
                           "=", 1)[1] for r in members],
                       "throughput": throughput, "latency": [r["latency_ms"] for r in members],
                       "knee": knee})
    meta = {"workload": args.workload, "preset": args.preset, "layers": args.layers
            if "layers" not in axes else None, "device": args.device, "repeat": args.repeat,
            "points": len(points)}
    text = render_sweep(f"Sweep — {args.workload} / {args.preset} over {', '.join(axes)}",
                        list(axes), rows, series, meta)
    _emit(args, text, "sweep")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def cmd_scale(args: argparse.Namespace) -> int:
    from analyzers.scaling import knee_index, scaling_efficiency, speedups
    from sessions.store import SessionStore
    from workbench.cli.progress import CliProgress
    from workbench.export.sweep_md import render_scale
    from workloads.catalog import get_preset, parse_layers

    get_preset(args.workload, args.preset)
    try:
        gpus = [int(g) for g in args.gpus.split(",") if g.strip()]
    except ValueError:
        raise WorkbenchError(f"--gpus must be integers, got {args.gpus!r}", "e.g. 1,2,4") from None
    if not gpus or min(gpus) < 1:
        raise WorkbenchError("--gpus needs counts >= 1", "e.g. 1,2,4")
    store, progress = SessionStore(args.home), CliProgress(quiet=args.quiet)
    params, layers = dict(args.param), parse_layers(args.layers)
    rows = []
    for count in gpus:
        record = run_point(args, store, params, layers, count, f"scale x{count}",
                           progress.on_event)
        latency, throughput = _metrics(record)
        rows.append({"gpus": count, "status": record.status, "latency_ms": latency,
                     "tokens_per_s": throughput, "run_id": record.id})
    throughput = [r["tokens_per_s"] for r in rows]
    for r, s, e in zip(rows, speedups(throughput), scaling_efficiency(gpus, throughput),
                       strict=True):
        r["speedup"], r["efficiency"] = s, e
    meta = {"workload": args.workload, "preset": args.preset, "layers": args.layers,
            "device": args.device, "repeat": args.repeat}
    text = render_scale(f"Scaling — {args.workload} / {args.preset} over GPUs", rows, meta,
                        knee_index(throughput))
    _emit(args, text, "scaling table")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
