"""The dense optimization ladder, decode at real context lengths and batch sizes, and the
8192-token prefill on one GPU, each row against the limit measured in the same run.

    python benchmarks/dense_ladder.py [--preset llama-3.1-8b] [--with-l6] [--compile-mode M]
        [--contexts 128,2048,8192] [--batches 1,8,32] [--grid-stacks "A;B"] [--skip PARTS]

Runs (each a session through profilers.runner.run, the same front door as the CLI):
  1. the limits: device copy bandwidth (1 GiB device-to-device, median of 20, read + write
     bytes) and, unless the prefill is skipped, the bf16 GEMM peak (8192^3, median of 10)
  2. "decode": the batch-1 ladder at context 128: L0; +L1; +L2; +L3; +L4; +L5; +L5-gemv; the
     FP8 stack L0-L5 + L5-fp8 (+ L6 rows with --with-l6); "decode-low" is its L0..L3 rows
  3. "grid": each --grid-stacks stack (default: the best bf16 and the FP8 stack) at every
     --contexts x --batches point, max_seq sized to the run (context + parity tokens + 16)
  4. "prefill": one 8192-token prefill: L0-L3 (SDPA, eager), L0-L5 and L0-L5 + L5-fp8
A stack is a layer list ("L0-L4,L5-gemv"), optionally with dense params after "@"
("L0-L4,L5-gemv@decode_kernel=sdpa" runs the same stack with the old SDPA decode).

Every decode row shows its bytes per step (weights + K/V read and written: the analytic
minimum, FP8 weights and FP8 KV at one byte), the effective bandwidth (those bytes over the
median step) and its share of the copy bandwidth measured above, with the tokens/s that share
would reach at 100%; every prefill row its model FLOP/s and share of the measured GEMM peak.
Targets (issue 20): bf16 decode at batch 1, context 128 and 8192 >= 85% of its limit; FP8
>= 75% with a serving peak <= 0.6x the bf16 stack's (peak_mem_bytes counts from prepare():
the build and the L0 reference need the bf16 model whatever the stack); prefill >= 80% of
the GEMM peak; parity on every row. SM clocks are read with NVML at start and end.

Writes benchmarks/results/dense_ladder-<device>.json and a Markdown file beside it after
every row ("partial": true until the end), so a run cut short keeps its rows; prints the
targets table last. Each row is in try/except: a failure is recorded, the rest still runs.
Budget on an H200: ~25 s per uncompiled row (8B build, parity, 20 steps), 60-90 s per
compiled one (compile mode "default"), ~40 s more at context 8192 (the prefills).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dense_ladder_report import device_name, render_markdown, targets_table  # noqa: E402
from sessions.records import RunStatus  # noqa: E402
from sessions.store import SessionStore  # noqa: E402
from workbench.api.runs import run  # noqa: E402
from workbench.export.ladder_md import build_ladder  # noqa: E402
from workloads import catalog  # noqa: E402
from workloads.spec import RunSpec  # noqa: E402

BEST_BF16 = "L0-L4,L5,L5-gemv"
FP8_STACK = "L0-L4,L5,L5-fp8"


def copy_bandwidth_tb_s() -> dict[str, Any]:
    import torch

    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    rates = [2 * n / t / 1e12 for t in times]
    del src, dst
    torch.cuda.empty_cache()
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "n": len(rates), "unit": "TB/s"}


def gemm_peak_tflops(n: int = 8192, repeats: int = 10) -> dict[str, Any]:
    """bf16 n^3 matrix product on random data (zeros ran 13% faster on an H200)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        rates.append(2 * n ** 3 / (start.elapsed_time(end) / 1e3) / 1e12)
    del a, b
    torch.cuda.empty_cache()
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "n": len(rates), "unit": "TFLOP/s", "what": f"bf16 {n}x{n}x{n} torch matmul"}


def nvml_clocks() -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        reasons_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) \
            or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        out = {"sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
               "mem_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
               "max_sm_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
               "throttle_reasons": int(reasons_fn(handle))}
        pynvml.nvmlShutdown()
        return out
    except Exception as exc:  # NVML missing is a fact to record, not a failure
        return {"error": f"{type(exc).__name__}: {exc}"}


def rate_stats(record: Any) -> dict[str, Any] | None:
    metrics = record.metrics or {}
    samples = (metrics.get("latency_ms") or {}).get("samples") or []
    tokens = metrics.get("tokens_per_step")
    if record.status is not RunStatus.OK or not samples or not tokens:
        return None
    rates = [tokens / (ms / 1e3) for ms in samples]
    return {"median": metrics.get("tokens_per_s"), "min": min(rates), "max": max(rates),
            "n": len(rates), "unit": "tok/s"}


def ladder_sets(with_l6: bool) -> list[list[str]]:
    base = ["L0", "L1", "L2", "L3", "L4"]
    sets = [base[:i + 1] for i in range(len(base))]
    sets += [base + ["L5"], base + ["L5", "L5-gemv"], base + ["L5", "L5-fp8"]]
    if with_l6:
        full = base + ["L5", "L5-gemv"]
        sets += [full + ["L6-paged"], full + ["L6-paged", "L6-fp8kv"],
                 full + ["L6-paged", "L6-fp8kv", "L6-spec"]]
    return sets


def parse_stack(text: str) -> tuple[str, list[str], dict[str, Any]]:
    """'L0-L4,L5-gemv@decode_kernel=sdpa' -> (text, layer names, params)."""
    layers_text, _, params_text = text.partition("@")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in params_text.split(","))):
        key, _, value = item.partition("=")
        params[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return text, catalog.parse_layers(layers_text, "dense"), params


def decode_share(record: Any, copy_bw: dict[str, Any] | None) -> dict[str, Any]:
    """Bytes per step, effective TB/s and the share of the copy bandwidth (same run)."""
    metrics = record.metrics or {}
    gb_s, moved = metrics.get("achieved_gb_s"), metrics.get("bytes_per_step")
    tokens = metrics.get("tokens_per_step")
    bw = copy_bw["median"] if copy_bw else None
    return {"bytes_per_step": moved, "effective_tb_s": gb_s / 1e3 if gb_s else None,
            "share_of_copy_bw": gb_s / 1e3 / bw if gb_s and bw else None,
            "limit_tok_s": tokens * bw * 1e12 / moved if tokens and moved and bw else None}


def row_facts(record: Any) -> dict[str, Any]:
    metrics, parity = record.metrics or {}, record.parity or {}
    details = record.details
    return {"status": str(record.status), "tokens_per_s": metrics.get("tokens_per_s"),
            "rate": rate_stats(record), "p50_ms": (metrics.get("latency_ms") or {}).get(
                "median"), "peak_mem_bytes": metrics.get("peak_mem_bytes"),
            "peak_mem_before_prepare_bytes": details.get("peak_mem_before_prepare_bytes"),
            "parity_ok": parity.get("ok"), "max_rel_err": parity.get("max_rel_err"),
            "top1": parity.get("top1_agreement"), "error": record.error,
            "session": record.id, "runtime": details.get("runtime"),
            "layer_notes": {o.get("name"): o.get("reason") for o in
                            record.layers_applied}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="llama-3.1-8b")
    parser.add_argument("--with-l6", action="store_true", help="add the L6 rows (slower)")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prefill-len", type=int, default=8192)
    parser.add_argument("--contexts", default="128,2048,8192")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--grid-stacks", default=f"{BEST_BF16};{FP8_STACK}",
                        help="';'-separated stacks for the context x batch grid")
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    parser.add_argument("--skip", default="", help="comma list of parts to leave out: "
                        "decode-low (L0..L3 rows), decode, grid, prefill, warmup (the "
                        "untimed first L0 run; for a machine already warm)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.monotonic()
    failures: dict[str, str] = {}
    results: dict[str, Any] = {"metrics": {}, "ladder": [], "grid": [], "prefill": []}
    store = SessionStore(Path(os.environ.get("AIPERF_HOME") or tempfile.mkdtemp(prefix="dense_ladder_")))
    clocks_start = nvml_clocks()
    records: list[Any] = []  # every session, for the device name and env
    decode_records: list[Any] = []

    def guarded(name: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
            return None

    cuda = args.device == "cuda"
    copy_bw = guarded("copy_bandwidth", copy_bandwidth_tb_s) if cuda else None
    gemm = guarded("gemm_peak", gemm_peak_tflops) if cuda and "prefill" not in skip else None
    results["metrics"].update({k: v for k, v in (("copy_bandwidth_tb_s", copy_bw),
                                                 ("gemm_peak_tflops", gemm)) if v})

    def step(layers: list[str], params: dict[str, Any], repeat: int, label: str) -> Any:
        spec = RunSpec(workload="dense", preset=args.preset, layers=layers, params=params,
                       repeat=repeat, warmup=3, timeout_s=600, device=args.device,
                       label=f"bench {label}")
        record = run(spec, store)
        records.append(record)
        print(f"[{time.monotonic() - started:6.0f}s] {label} {record.status} "
              f"{(record.metrics or {}).get('tokens_per_s')} tok/s {record.error or ''}",
              flush=True)
        return record

    def write(partial: bool) -> Path:
        """The results file after every row, so a run cut short still leaves its rows."""
        env = next((r.env for r in records if r.env), {}) or {}
        device = device_name(records, cuda)
        slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip() or None
        clocks_end = nvml_clocks()
        payload = {
            "benchmark": "dense_ladder", "command": "python " + " ".join(sys.argv),
            "partial": partial, "device": device, "driver": env.get("driver"),
            "torch": env.get("torch"), "commit": commit, "preset": args.preset,
            "date": datetime.date.today().isoformat(),
            "clocks": {"sm_mhz_start": clocks_start.get("sm_mhz"),
                       "sm_mhz_end": clocks_end.get("sm_mhz"), "start": clocks_start,
                       "end": clocks_end,
                       "throttle_seen": bool(clocks_end.get("throttle_reasons", 0) & ~0x1)},
            "metrics": results["metrics"], "targets": targets_table(results),
            "warmup_run": results.get("warmup_run"), "ladder": results["ladder"],
            "grid": results["grid"], "prefill": results["prefill"], "failures": failures,
            "wall_s": round(time.monotonic() - started, 1),
            "notes": f"decode rows: {args.new_tokens} parity tokens, {args.repeat} timed steps "
                     f"after 3 warm-up; the ladder at context 128 with the preset's max_seq, "
                     f"grid rows with max_seq = context + {args.new_tokens} + 16; compile_mode "
                     f"{args.compile_mode}; random weights built on the device; bytes per step"
                     " = weights + K/V read and written (analytic minimum); peak_mem_bytes "
                     "from prepare() on.",
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        json_path = args.out_dir / f"dense_ladder-{slug}.json"
        json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        rows = build_ladder(decode_records) if decode_records else []
        (args.out_dir / f"dense_ladder-{slug}.md").write_text(
            render_markdown(payload, rows, args.preset, args.repeat))
        return json_path

    base_params = {"unmet_layers": "skip", "compile_mode": args.compile_mode,
                   "new_tokens": args.new_tokens}
    sets = [] if "decode" in skip else ladder_sets(args.with_l6)
    if (sets or "grid" not in skip) and "warmup" not in skip:
        # The first child on a fresh machine ran ~1.5x slower than the same L0 a minute
        # later (H100 and H200 alike): one L0 run first, kept in the JSON, not in the tables.
        warm = guarded("machine warm-up run",
                       lambda: step(["L0"], {**base_params, "batch": 1}, 5, "warm-up L0"))
        results["warmup_run"] = {"layers": ["L0"], "tokens_per_s": (warm.metrics or {}).get(
            "tokens_per_s") if warm else None, "note": "first child process on the machine; "
            "not in the tables"}
    if "decode-low" in skip:
        sets = [s for s in sets if "L4" in s]
    for layers in sets:
        record = guarded(f"decode {','.join(layers)}", lambda layers=layers: step(
            layers, {**base_params, "batch": 1}, args.repeat, ",".join(layers)))
        if record is not None:
            decode_records.append(record)
            rows = build_ladder(decode_records)
            results["ladder"] = [{"layers": row.layers, "step_speedup": row.step_speedup,
                                  "cumulative_speedup": row.cumulative_speedup,
                                  "explanation": row.explanation, **row_facts(rec),
                                  **decode_share(rec, copy_bw)}
                                 for rec, row in zip(decode_records, rows, strict=True)]
            write(partial=True)

    grid_stacks = [] if "grid" in skip else [parse_stack(s) for s in args.grid_stacks.split(";")
                                             if s.strip()]
    for text, layers, extra_params in grid_stacks:
        for context in (int(c) for c in args.contexts.split(",") if c.strip()):
            for batch in (int(b) for b in args.batches.split(",") if b.strip()):
                params = {**base_params, "batch": batch, "prompt_len": context,
                          "max_seq": context + args.new_tokens + 16, **extra_params}
                label = f"{text} ctx {context} b{batch}"
                record = guarded(f"grid {label}", lambda layers=layers, params=params,
                                 label=label: step(layers, params, args.repeat, label))
                if record is not None:
                    results["grid"].append({"stack": text, "layers": layers,
                                            "params": extra_params, "context": context,
                                            "batch": batch, **row_facts(record),
                                            **decode_share(record, copy_bw)})
                    write(partial=True)

    prefill_params = {"batch": 1, "mode": "prefill", "prompt_len": args.prefill_len,
                      "new_tokens": 8, "max_seq": args.prefill_len + 16,
                      "unmet_layers": "skip", "compile_mode": args.compile_mode}
    prefill_sets = [] if "prefill" in skip else [
        ["L0", "L1", "L2", "L3"], ["L0", "L1", "L2", "L3", "L4", "L5"],
        ["L0", "L1", "L2", "L3", "L4", "L5", "L5-fp8"]]
    for layers in prefill_sets:
        record = guarded(f"prefill {','.join(layers)}", lambda layers=layers: step(
            layers, prefill_params, 5, f"prefill {','.join(layers)}"))
        if record is not None:
            tflops = (record.metrics or {}).get("achieved_tflops")
            peak = gemm["median"] if gemm else None
            results["prefill"].append({
                "layers": layers, **row_facts(record), "parity": record.parity,
                "achieved_tflops": tflops,
                "share_of_gemm_peak": tflops / peak if tflops and peak else None})
            write(partial=True)

    json_path = write(partial=False)
    print(f"\nwrote {json_path} in {time.monotonic() - started:.0f} s")
    for line in targets_table(results)["lines"]:
        print(line)
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
