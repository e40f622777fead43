"""`aiperf-workbench ladder`: run the optimization ladder L0, L0+L1, ... all-on, one session
per step, and print (and export) the table with per-step and cumulative speedups.

Every step runs with the dense param ``unmet_layers=skip``: a layer whose requirement is not
met (e.g. CUDA graphs on a CPU box) is recorded as not applied with its reason and the step
still runs, so the table shows "needs CUDA" instead of stopping. A plain `run` keeps failing
on an unmet requirement (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sessions.records import RunStatus
from workbench.cli.main import stop_event
from workloads.errors import WorkbenchError


def default_layer_sets(workload: str) -> list[list[str]]:
    """L0, then one more catalog layer per step in (level, name) order, ending all-on. The
    steps are the generic math layers (L0, L1) and the layers that name this workload."""
    from workloads.catalog import LAYERS

    names = sorted((n for n, info in LAYERS.items()
                    if workload in info.applies_to or (not info.applies_to and info.level <= 1)),
                   key=lambda n: (LAYERS[n].level, n))
    return [names[:index + 1] for index in range(len(names))]


def parse_layer_sets(text: str) -> list[list[str]]:
    from workloads.catalog import parse_layers

    sets = [parse_layers(part) for part in text.split(";") if part.strip()]
    if not sets:
        raise WorkbenchError("--layers-sets is empty", 'e.g. "L0;L0,L1;L0-L3"')
    return sets


def _param(text: str) -> tuple[str, Any]:
    from workbench.cli.main import _param as parse

    return parse(text)


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
    ladder.add_argument("--param", type=_param, action="append", default=[],
                        metavar="KEY=VALUE", help="workload parameter; repeatable")
    ladder.add_argument("--export", type=Path, metavar="FILE.md", help="write the table")
    ladder.add_argument("--quiet", action="store_true")
    ladder.set_defaults(handler=cmd_ladder)


def memory_line(workload: str, preset: str, params: dict[str, Any]) -> str | None:
    if workload != "dense":
        return None
    from workbench.export.fmt import fmt_bytes
    from workloads.estimate import estimate_for_preset

    est = estimate_for_preset(preset, {k: v for k, v in params.items()
                                       if k not in ("mode", "unmet_layers")})
    return (f"{fmt_bytes(est.total_bytes)} (weights {fmt_bytes(est.weights_bytes)}, KV cache "
            f"{fmt_bytes(est.kv_cache_bytes)}, activations ~{fmt_bytes(est.activations_bytes)})")


def run_ladder(workload: str, preset: str, layer_sets: list[list[str]], params: dict[str, Any],
               store: Any, *, device: str = "auto", repeat: int = 10, warmup: int = 3,
               timeout_s: float = 900.0, on_event: Any = None) -> list[Any]:
    """One session per layer set (the front door, profilers.runner.run); returns records."""
    from profilers.runner import run
    from workloads.spec import RunSpec

    records = []
    for layers in layer_sets:
        spec = RunSpec(workload=workload, preset=preset, layers=layers, profiler="timer",
                       params={**params, "unmet_layers": "skip"}, repeat=repeat,
                       warmup=warmup, timeout_s=timeout_s, device=device,
                       label=f"ladder {','.join(layers)}")
        records.append(run(spec, store, on_event=on_event, cancel=stop_event()))
    return records


def ladder_meta(records: list[Any], workload: str, preset: str, params: dict[str, Any],
                repeat: int) -> dict[str, Any]:
    first = next((r for r in records if r.env), None)
    env = first.env if first else {}
    step = next((r.metrics.get("step") for r in records if r.metrics.get("step")), None)
    shape = next((r.details["shape"] for r in records if r.details.get("shape")), None) or {}
    return {"workload": workload, "preset": preset, "device": env.get("device_name"),
            "torch": env.get("torch"), "step": step, "dtype": shape.get("dtype"),
            "repeat": repeat, "memory": memory_line(workload, preset, params)}


def cmd_ladder(args: argparse.Namespace) -> int:
    from sessions.store import SessionStore
    from workbench.cli.progress import CliProgress
    from workbench.export.ladder_md import build_ladder, render_ladder_markdown
    from workloads.catalog import get_preset

    get_preset(args.workload, args.preset)
    params: dict[str, Any] = dict(args.param)
    if args.mode:
        params["mode"] = args.mode
    sets = parse_layer_sets(args.layers_sets) if args.layers_sets \
        else default_layer_sets(args.workload)
    memory = memory_line(args.workload, args.preset, params)
    if memory:
        print(f"memory estimate: {memory}", file=sys.stderr)
    store = SessionStore(args.home)
    progress = CliProgress(quiet=args.quiet)
    records = run_ladder(args.workload, args.preset, sets, params, store, device=args.device,
                         repeat=args.repeat, warmup=args.warmup, timeout_s=args.timeout,
                         on_event=progress.on_event)
    rows = build_ladder(records)
    text = render_ladder_markdown(rows, ladder_meta(records, args.workload, args.preset,
                                                    params, args.repeat))
    from workbench.export.escape import term_text

    sys.stdout.write(term_text(text))
    if args.export:
        from workbench.cli.commands import _write_output

        _write_output(args.export, text)
        print(f"ladder written to {args.export}", file=sys.stderr)
    return 0 if all(r.status is RunStatus.OK for r in records) else 1
