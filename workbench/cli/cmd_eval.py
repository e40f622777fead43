"""`aiperf-workbench eval --perplexity TOKENS_FILE`: accuracy per layer set.

The model runs in a supervised child (``python -m workloads.perplexity``), like ``run``;
this process never imports torch. The result is stored as a session of kind "eval" and
printed as one row per layer set. Exit 1 when a layer set moves perplexity beyond the
tolerance against the first set (the accuracy regression the check exists to catch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sessions.records import RunStatus, SessionKind
from workbench.cli.main import stop_event
from workloads.atomic import write_json_atomic
from workloads.errors import WorkbenchError

EXIT_OK, EXIT_FAILED = 0, 1
EVAL_SPEC = "eval_spec.json"  # the child's input: the model's run spec and the eval settings


def register(sub: Any) -> None:
    from workbench.cli.main import _param

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
    parser.add_argument("--param", type=_param, action="append", default=[],
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


def parse_layer_sets(text: str) -> list[list[str]]:
    from workloads.catalog import parse_layers

    sets = [parse_layers(part) for part in text.split(";") if part.strip()]
    if not sets:
        raise WorkbenchError("--layers-sets is empty", "e.g. 'L0;L0,L1'")
    return sets


def build_eval_spec(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model's run spec and the eval settings (what ``workloads.perplexity`` reads)."""
    from profilers.runner import resolve_spec
    from workloads.perplexity import read_tokens, windows
    from workloads.spec import RunSpec

    if args.seq_len < 2 or args.stride < 1 or args.stride >= args.seq_len:
        raise WorkbenchError(f"need --seq-len >= 2 and 1 <= --stride < --seq-len (got "
                             f"{args.seq_len}, {args.stride})")
    if args.tolerance < 0:
        raise WorkbenchError(f"--tolerance must be >= 0, got {args.tolerance}")
    tokens = read_tokens(args.perplexity, args.token_dtype)  # fail fast, before any child
    params: dict[str, Any] = dict(args.param)
    if args.dtype:
        params["dtype"] = args.dtype
    run_spec = RunSpec(workload=args.workload, preset=args.preset, params=params,
                       device=args.device, seed=args.seed, target=args.target,
                       checkpoint=args.checkpoint)
    if run_spec.target:
        from workloads.targets import parse_target

        run_spec.workload, run_spec.preset = parse_target(run_spec.target).display_name, ""
    resolve_spec(run_spec)
    layer_sets = parse_layer_sets(args.layers_sets)
    count = min(tokens.size, args.max_tokens or tokens.size)
    return run_spec, {
        "tokens_file": str(args.perplexity.expanduser().resolve()),
        "token_dtype": args.token_dtype, "seq_len": args.seq_len, "stride": args.stride,
        "layer_sets": layer_sets, "tolerance": args.tolerance, "max_tokens": args.max_tokens,
        "simulate_bug": args.simulate_bug or "",
        "windows": len(windows(count, args.seq_len, args.stride)),
    }


def cmd_eval(args: argparse.Namespace) -> int:
    from profilers.runner import child_env
    from profilers.supervisor import run_supervised
    from sessions.store import SessionStore
    from workbench.cli.progress import CliProgress

    run_spec, settings = build_eval_spec(args)
    store = SessionStore(args.home)
    record = store.new_run(run_spec, kind=SessionKind.EVAL,
                           prepare=lambda new: new.eval.update(settings))
    run_dir = store.run_dir(record.id)
    progress = CliProgress(quiet=args.quiet)
    progress.on_event({"event": "session", "run_id": record.id, "run_dir": str(run_dir)})
    write_json_atomic(run_dir / EVAL_SPEC, {"run": run_spec.to_dict(), **settings})
    command = [sys.executable, "-m", "workloads.perplexity", "--spec",
               str(run_dir / EVAL_SPEC), "--out", str(run_dir)]
    record.status = RunStatus.RUNNING
    store.save(record)
    outcome = run_supervised(command, run_dir / "run.log", args.timeout, env=child_env(),
                             on_event=progress.on_event, cancel=stop_event())
    record.artifacts["log"] = "run.log"
    result: dict[str, Any] = {}
    result_path = run_dir / "eval.json"
    if result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        record.artifacts["eval"] = "eval.json"
    record.env = result.get("env") or {}
    record.status = RunStatus.parse(result.get("status") or "failed")
    record.error, record.error_type = result.get("error"), result.get("error_type")
    if outcome.status in ("timeout", "cancelled"):
        record.status = RunStatus(outcome.status)
        record.error = record.error or f"{outcome.status}; the child was stopped"
    elif record.status is not RunStatus.OK and not record.error:
        record.error = f"the eval process exited with code {outcome.returncode}; see " \
                       f"{run_dir / 'run.log'}"
    sets = result.get("sets") or []
    record.eval.update({k: v for k, v in result.items()
                        if k not in ("spec", "env", "status", "error", "error_type")})
    if record.status is RunStatus.OK and not result.get("ok"):
        failing = [",".join(s["layers"]) for s in sets if not s["ok"]]
        record.error = (f"accuracy regression: perplexity of {'; '.join(failing)} moved more "
                        f"than {args.tolerance:.2%} from {','.join(sets[0]['layers'])}")
    record.finished_at = time.time()
    store.save(record)
    progress.on_event({"event": "done", "status": record.status.value, "run_id": record.id,
                       "error": record.error})
    _print_eval(record, result)
    if args.json:
        from workbench.cli.commands import _write_output
        from workbench.export.json_export import dumps

        _write_output(args.json, dumps(record.to_dict()))
    if record.status is not RunStatus.OK:
        return 2 if record.error_type == "WorkbenchError" else EXIT_FAILED
    return EXIT_OK if result.get("ok") else EXIT_FAILED


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
