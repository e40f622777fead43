"""`aiperf-workbench ladder`: run the optimization ladder L0, L0+L1, ... all-on, one session
per step, and print (and export) the table with per-step and cumulative speedups.

Every step runs with the param ``unmet_layers=skip`` (dense, moe, gptoss): a layer whose
requirement is not met (e.g. CUDA graphs on a CPU box) is recorded as not applied with its
reason and the step still runs, so the table shows "needs CUDA" instead of stopping. A plain
`run` keeps failing on an unmet requirement (exit 2). A range in --layers-sets takes the
layers that apply to the workload; the ones it leaves out are printed and recorded with each
run (the table's Layers section lists them with the reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import stop_event
from workloads.errors import WorkbenchError


def default_layer_sets(workload: str) -> list[list[str]]:
    """L0, then one more catalog layer per step in (level, name) order, ending all-on. The
    steps are the generic math layers (L0, L1) and the layers that name this workload."""
    from workloads.catalog import LAYERS

    names = sorted((n for n, info in LAYERS.items()
                    if workload in info.applies_to or (not info.applies_to and info.level <= 1)),
                   key=lambda n: (LAYERS[n].level, n))
    return [names[:index + 1] for index in range(len(names))]


def parse_layer_sets(text: str, workload: str | None = None) -> list[list[str]]:
    return [selection.names for selection in select_layer_sets(text, workload)]


def select_layer_sets(text: str, workload: str | None = None) -> list[Any]:
    """Each ';'-separated stack as a ``catalog.LayerSelection``: a range takes the layers
    that apply to ``workload`` and names the ones it left out, with the reason."""
    from workloads.catalog import select_layers

    sets = [select_layers(part, workload) for part in text.split(";") if part.strip()]
    if not sets:
        raise WorkbenchError("--layers-sets is empty", 'e.g. "L0;L0,L1;L0-L3"')
    return sets


def _param(text: str) -> tuple[str, Any]:
    from workbench.cli import _param as parse

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
               timeout_s: float = 900.0, on_event: Any = None,
               skipped: list[dict[str, str]] | None = None) -> list[Any]:
    """One session per layer set (the front door, profilers.runner.run); returns records.
    ``skipped[i]``: the layers set i's range left out (name -> why), recorded with the run."""
    from profilers.runner import run
    from workloads.spec import RunSpec

    records = []
    for index, layers in enumerate(layer_sets):
        spec = RunSpec(workload=workload, preset=preset, layers=layers, profiler="timer",
                       skipped_layers=dict(skipped[index]) if skipped else {},
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
    shape = next(((r.extra.get("extra") or {}).get("shape") for r in records
                  if (r.extra.get("extra") or {}).get("shape")), None) or {}
    return {"workload": workload, "preset": preset, "device": env.get("device_name"),
            "torch": env.get("torch"), "step": step, "dtype": shape.get("dtype"),
            "repeat": repeat, "memory": memory_line(workload, preset, params)}


def cmd_ladder(args: argparse.Namespace) -> int:
    from sessions.store import SessionStore
    from workbench.export.ladder_md import build_ladder, render_ladder_markdown
    from workbench.progress import CliProgress
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
    store = SessionStore(args.home)
    progress = CliProgress(quiet=args.quiet)
    records = run_ladder(args.workload, args.preset, sets, params, store, device=args.device,
                         repeat=args.repeat, warmup=args.warmup, timeout_s=args.timeout,
                         on_event=progress.on_event, skipped=skipped)
    rows = build_ladder(records)
    text = render_ladder_markdown(rows, ladder_meta(records, args.workload, args.preset,
                                                    params, args.repeat))
    from workbench.export.escape import term_text

    sys.stdout.write(term_text(text))
    if args.export:
        from workbench.commands import _write_output

        _write_output(args.export, text)
        print(f"ladder written to {args.export}", file=sys.stderr)
    return 0 if all(r.status == "ok" for r in records) else 1
