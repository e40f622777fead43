"""The MoE ladders of issue 20 through the CLI's own front door, in one go.

    python benchmarks/moe_ladder.py                        # H200: moe/full + gptoss/20b rows
    python benchmarks/moe_ladder.py --parts moe --moe-sets "L0;L0-L4,L6-moe-grouped;L0-L6"
    python benchmarks/moe_ladder.py --device cpu --moe-preset tiny --gptoss-preset tiny \\
        --prefill-len 32 --repeat 2                        # a smoke test

Every row is a stored session run by ``workbench.api.ladder.run_ladder`` — the function behind
`aiperf-workbench ladder` — so each goes through profilers.runner.run, the child process, the
layers as the catalog applies them and the parity guard against L0, exactly as a user's
ladder does (``unmet_layers=skip``: a layer the machine cannot run is a row note, not a
failure). Parts (``--parts``, comma list):

  moe             `ladder --workload moe --preset full`: the default layer sets (L0, +L1, ...,
                  all on) or ``--moe-sets``. Target: all-on vs L0 >= 15x (tokens/s).
  gptoss-decode   gpt-oss 20b decode at batch 1: L0, all-on in bf16 (every layer but FP8) and
                  all-on. Each row's share of its weight-bytes limit: the workload's bytes per
                  step (the 4 routed experts, attention, router, LM head and the KV read; FP8
                  experts at one byte per weight) over the median step, against the copy
                  bandwidth measured at the start of this run. Target: all-on >= 70%.
  gptoss-prefill  gpt-oss 20b prefill of --prefill-len (8,192) tokens at batch 1: L0 and the
                  bf16 all-on stack; model TFLOP/s against a bf16 GEMM measured in this run.

Ceilings are measured in this process before the children start (1 GiB device copy, read +
write bytes; an 8192^3 bf16 GEMM), with ``workloads.calibrate``. Results go to
benchmarks/results/moe_ladder-<gpu>.json and .md, rewritten after every row ("partial": true
until the end), so a run cut short keeps what it measured; a short table is printed last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sessions.store import SessionStore  # noqa: E402
from workbench.api.ladder import (  # noqa: E402
    default_layer_sets,
    ladder_meta,
    run_ladder,
    select_layer_sets,
)
from workbench.export.ladder_md import build_ladder, render_ladder_markdown  # noqa: E402

TARGETS = {"moe_all_on_vs_l0": 15.0, "gptoss_decode_b1_share_of_limit": 0.70}
PARTS = ("moe", "gptoss-decode", "gptoss-prefill")


def measure_ceilings(device: str) -> dict[str, Any]:
    """Copy bandwidth (and a bf16 GEMM on CUDA) on this device, now."""
    import torch

    from workloads import calibrate

    dev = torch.device(device)
    out: dict[str, Any] = {"device_name": torch.cuda.get_device_name(dev)
                           if dev.type == "cuda" else "cpu"}
    out["copy_bytes_per_s"] = calibrate._copy_bytes_per_s(1 << 30 if dev.type == "cuda"
                                                          else 1 << 26, dev, 3, 20)
    if dev.type == "cuda":
        out["bf16_gemm_flops"] = calibrate._gemm_flops("bf16", 8192, dev, 3, 10)
        torch.cuda.empty_cache()
    return out


def nvml_clocks() -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        out = {"sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
               "mem_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)}
        pynvml.nvmlShutdown()
        return out
    except Exception as exc:  # NVML missing is a fact to record, not a failure
        return {"error": f"{type(exc).__name__}: {exc}"}


def row_facts(record: Any, row: Any, ceilings: dict[str, Any]) -> dict[str, Any]:
    """One ladder row with its limits: what the JSON keeps."""
    metrics = record.metrics or {}
    extra = record.details or {}
    gb_s, tflops = metrics.get("achieved_gb_s"), metrics.get("achieved_tflops")
    copy, gemm = ceilings.get("copy_bytes_per_s"), ceilings.get("bf16_gemm_flops")
    return {
        "layers": row.layers, "status": row.status, "session": record.id,
        "tokens_per_s": row.tokens_per_s, "p50_ms": row.p50_ms, "p10_ms": row.p10_ms,
        "p90_ms": row.p90_ms, "step_speedup": row.step_speedup,
        "cumulative_speedup": row.cumulative_speedup, "peak_mem_bytes": row.peak_mem_bytes,
        "parity_ok": row.parity_ok, "max_rel_err": row.max_rel_err, "top1": row.top1,
        "bytes_per_step": metrics.get("bytes_per_step"),
        "flops_per_step": metrics.get("flops_per_step"), "achieved_gb_s": gb_s,
        "share_of_copy_bw": gb_s * 1e9 / copy if gb_s and copy else None,
        "achieved_tflops": tflops,
        "share_of_bf16_gemm": tflops * 1e12 / gemm if tflops and gemm else None,
        "not_applied": row.not_applied, "notes": row.notes, "error": row.error,
        "runtime": extra.get("runtime"), "moe_impl": extra.get("moe_impl"),
        "routing_parity": extra.get("routing_parity")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--moe-preset", default="full")
    parser.add_argument("--gptoss-preset", default="20b")
    parser.add_argument("--moe-sets", default=None, metavar='"L0;L0-L4;..."',
                        help="layer stacks of the moe ladder (default: the CLI's)")
    parser.add_argument("--gptoss-decode-sets", default=None, metavar='"L0;L0-L6"',
                        help="stacks of the gpt-oss decode rows (default: L0, all-on in bf16, "
                        "all-on)")
    parser.add_argument("--gptoss-prefill-sets", default=None, metavar='"L0;L0-L4"',
                        help="stacks of the gpt-oss prefill rows (default: L0, all-on in bf16)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=8, help="parity tokens per row")
    parser.add_argument("--prefill-len", type=int, default=8192)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per row")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    started = time.monotonic()
    store = SessionStore(Path(os.environ.get("AIPERF_HOME")
                              or tempfile.mkdtemp(prefix="moe_ladder_")))
    failures: dict[str, str] = {}
    clocks_start = nvml_clocks()
    try:
        ceilings = measure_ceilings(args.device)
    except Exception as exc:
        traceback.print_exc()
        failures["ceilings"] = f"{type(exc).__name__}: {exc}"
        ceilings = {}
    print(f"ceilings: {json.dumps(ceilings)}", flush=True)
    results: dict[str, Any] = {}
    markdown: dict[str, str] = {}
    records_by_part: dict[str, list[Any]] = {}

    all_on = default_layer_sets("gptoss")[-1]
    all_on_bf16 = [name for name in all_on if name != "L5-moe-fp8"]
    plans: dict[str, tuple[str, str, list[list[str]], list[dict[str, str]] | None,
                           dict[str, Any], int]] = {}
    if args.moe_sets:
        selections = select_layer_sets(args.moe_sets, "moe")
        moe_sets = [s.names for s in selections]
        moe_skipped: list[dict[str, str]] | None = [s.skipped for s in selections]
    else:
        moe_sets, moe_skipped = default_layer_sets("moe"), None
    plans["moe"] = ("moe", args.moe_preset, moe_sets, moe_skipped,
                    {"new_tokens": args.new_tokens}, args.repeat)
    def gptoss_sets(text: str | None, default: list[list[str]]
                    ) -> tuple[list[list[str]], list[dict[str, str]] | None]:
        if not text:
            return default, None
        selections = select_layer_sets(text, "gptoss")
        return [s.names for s in selections], [s.skipped for s in selections]

    plans["gptoss-decode"] = ("gptoss", args.gptoss_preset,
                              *gptoss_sets(args.gptoss_decode_sets,
                                           [["L0"], all_on_bf16, all_on]),
                              {"batch": 1, "new_tokens": args.new_tokens}, args.repeat)
    plans["gptoss-prefill"] = ("gptoss", args.gptoss_preset,
                               *gptoss_sets(args.gptoss_prefill_sets, [["L0"], all_on_bf16]),
                               {"batch": 1, "mode": "prefill", "prompt_len": args.prefill_len,
                                "max_seq": args.prefill_len + 16, "new_tokens": 4},
                               max(3, args.repeat // 3))

    def summary() -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        moe_rows = results.get("moe") or []
        if moe_rows and moe_rows[-1]["parity_ok"] and moe_rows[-1]["cumulative_speedup"]:
            metrics["moe_all_on_vs_l0"] = {"median": moe_rows[-1]["cumulative_speedup"],
                                           "unit": "x", "layers": moe_rows[-1]["layers"]}
        for row in results.get("gptoss-decode") or []:
            if row["layers"] in (all_on, all_on_bf16) and row["share_of_copy_bw"] \
                    and row["parity_ok"]:
                key = "gptoss_decode_b1_share_of_limit" + ("" if row["layers"] == all_on
                                                           else "_bf16_experts")
                metrics[key] = {"median": row["share_of_copy_bw"], "unit": "share",
                                "tokens_per_s": row["tokens_per_s"], "layers": row["layers"]}
        for row in results.get("gptoss-prefill") or []:
            if row["layers"] != ["L0"] and row["parity_ok"]:  # the best stack asked for
                metrics["gptoss_prefill_tok_s"] = {"median": row["tokens_per_s"],
                                                   "unit": "tok/s",
                                                   "share_of_bf16_gemm":
                                                   row["share_of_bf16_gemm"]}
        return metrics

    def write(partial: bool) -> Path:
        env = next((r.env for rs in records_by_part.values() for r in rs if r.env), {}) or {}
        device = str(env.get("device_name") or ceilings.get("device_name") or "unknown")
        slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip() or None
        metrics = summary()
        payload = {
            "benchmark": "moe_ladder", "command": "python " + " ".join(sys.argv),
            "partial": partial, "device": device, "driver": env.get("driver"),
            "torch": env.get("torch"), "commit": commit,
            "date": datetime.date.today().isoformat(),
            "clocks": {"start": clocks_start, "end": nvml_clocks()},
            "ceilings_measured_here": ceilings, "metrics": metrics, "targets": TARGETS,
            "parts": results, "failures": failures,
            "wall_s": round(time.monotonic() - started, 1),
            "what": "every row a stored session through workbench.api.ladder.run_ladder (the "
                    "`aiperf-workbench ladder` code path: child process, catalog layers, "
                    "parity against L0); tokens/s from the median of the timed steps; a "
                    "decode row's share = the workload's bytes per step / median step / the "
                    "copy bandwidth above; a prefill row's share = model FLOPs / median step "
                    "/ the bf16 GEMM above",
            "notes": f"{args.repeat} timed steps after {args.warmup} warm-up, "
                     f"{args.new_tokens} parity tokens; random weights built on the device.",
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        json_path = args.out_dir / f"moe_ladder-{slug}.json"
        json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        lines = [f"# MoE ladders — {device}", "", payload["what"] + ".", ""]
        copy = ceilings.get("copy_bytes_per_s")
        if copy:
            lines.append(f"Copy bandwidth (this run): {copy / 1e9:,.0f} GB/s.")
        if ceilings.get("bf16_gemm_flops"):
            lines.append(f"bf16 GEMM (this run): {ceilings['bf16_gemm_flops'] / 1e12:.0f} "
                         "TFLOP/s.")
        lines += ["", "## Targets", "", "| figure | measured | target |", "| :--- | ---: | ---: |"]
        for key, target in TARGETS.items():
            value = (metrics.get(key) or {}).get("median")
            lines.append(f"| {key} | {'n/a' if value is None else f'{value:.3g}'} | {target:g} |")
        for part, text in markdown.items():
            lines += ["", f"## {part}", "", text, "| layers | bytes/step | GB/s | share of "
                      "copy bw | TFLOP/s | share of bf16 GEMM |",
                      "| :--- | ---: | ---: | ---: | ---: | ---: |"]
            for row in results[part]:
                def num(v: Any, scale: float = 1.0, digits: int = 3) -> str:
                    return "n/a" if v is None else f"{v * scale:.{digits}g}"
                lines.append(f"| {','.join(row['layers'])} | {num(row['bytes_per_step'])} | "
                             f"{num(row['achieved_gb_s'])} | {num(row['share_of_copy_bw'])} | "
                             f"{num(row['achieved_tflops'])} | "
                             f"{num(row['share_of_bf16_gemm'])} |")
        if failures:
            lines += ["", "## Failures", ""] + [f"- {k}: {v}" for k, v in failures.items()]
        (args.out_dir / f"moe_ladder-{slug}.md").write_text("\n".join(lines) + "\n")
        return json_path

    for part in parts:
        workload, preset, sets, skipped, params, repeat = plans[part]
        records: list[Any] = []
        records_by_part[part] = records
        for index, layers in enumerate(sets):
            try:
                record = run_ladder(workload, preset, [layers], params, store,
                                    device=args.device, repeat=repeat, warmup=args.warmup,
                                    timeout_s=args.timeout,
                                    skipped=[skipped[index]] if skipped else None)[0]
            except Exception as exc:
                traceback.print_exc()
                failures[f"{part} {','.join(layers)}"] = f"{type(exc).__name__}: {exc}"
                continue
            records.append(record)
            print(f"[{time.monotonic() - started:6.0f}s] {part} {','.join(layers)} "
                  f"{record.status} {(record.metrics or {}).get('tokens_per_s')} tok/s "
                  f"{record.error or ''}", flush=True)
            rows = build_ladder(records)
            results[part] = [row_facts(r, row, ceilings) for r, row in zip(records, rows,
                                                                            strict=True)]
            markdown[part] = render_ladder_markdown(
                rows, ladder_meta(records, workload, preset, params, repeat))
            write(partial=True)
    path = write(partial=False)
    print(f"\nwrote {path} in {time.monotonic() - started:.0f} s")
    for part, rows in results.items():
        for row in rows:
            share = row["share_of_copy_bw"] if "prefill" not in part else row["share_of_bf16_gemm"]
            print(f"{part:15} {','.join(row['layers']):55} {row['status']:6} "
                  f"{row['tokens_per_s'] or 0:10.1f} tok/s  x{row['cumulative_speedup'] or 0:6.2f}"
                  f"  share {share or 0:.2f}  parity {row['parity_ok']}")
    for key, value in summary().items():
        print(f"{key}: {value['median']:.3g} (target {TARGETS.get(key, '-')})")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
