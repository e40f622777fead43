"""Micro-workload benchmarks on one GPU: attention (8K / 32K, each mask, naive vs SDPA vs
FlexAttention, peak memory), paged vs contiguous decode, GEMM precisions (TFLOP/s and error vs
fp64), speculative decoding (acceptance and speedup vs k).

    python benchmarks/micro.py [--quick]

Runs in process (torch on the GPU), every variant through the same workload classes the
catalog runs, after the parity guard against the baseline variant. Timing: CUDA events around
one step, 3 warm-ups, median of 10 (--quick: 1 and 3). Peak memory: the CUDA allocator's peak
above what was resident before the step. A variant that runs out of memory is recorded as
"OOM" (expected for naive attention at 32K). Each part is in try/except: a failure is recorded
and the rest still runs. Budget: under 4 minutes on an H100. Writes
benchmarks/results/micro-<device>.json (format of BENCHMARKS.md); prints a table last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workloads import catalog, measure  # noqa: E402
from workloads.micro_attention import AttentionWorkload  # noqa: E402
from workloads.micro_base import step_peak_memory  # noqa: E402
from workloads.micro_gemm import GemmWorkload  # noqa: E402
from workloads.micro_paged import PagedDecodeWorkload  # noqa: E402
from workloads.micro_specdec import SpecDecodeWorkload  # noqa: E402
from workloads.parity import compare  # noqa: E402

DEVICE = torch.device("cuda")
WARMUP, REPEAT = 3, 10


def sm_clock_mhz() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return int(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
    except Exception:
        return None


def measure_variant(cls: type, name: str, preset: str, **params: Any) -> dict[str, Any]:
    """Build, check parity against the baseline, time the step, measure its peak memory."""
    merged = {**catalog.get_preset(name, preset), **params}
    workload = cls()
    dtype = {"bfloat16": torch.bfloat16}.get(merged.get("dtype"), torch.float32)
    row: dict[str, Any] = {"workload": name, "preset": preset, **params}
    try:
        with torch.inference_mode():
            workload.build(DEVICE, dtype, merged, seed=0)
            inputs = workload.make_inputs(0)
            reference = workload.parity_outputs(inputs)
            parity = compare(reference, workload.parity_outputs(inputs, reference.tokens),
                             workload.compute_precision)
            del reference
            row["parity_ok"], row["max_rel_err"] = parity.ok, parity.max_rel_err
            workload.prepare(inputs)
            timer = measure.StepTimer(DEVICE)
            for _ in range(WARMUP):
                timer.time_ms(lambda: workload.step(inputs))
            samples = [timer.time_ms(lambda: workload.step(inputs)) for _ in range(REPEAT)]
            row["peak_mem_bytes"] = step_peak_memory(lambda: workload.step(inputs), DEVICE)
    except torch.OutOfMemoryError:
        row["error"] = "OOM"
        torch.cuda.empty_cache()
        return row
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        traceback.print_exc()
        return row
    median = statistics.median(samples)
    row.update(ms={"median": median, "min": min(samples), "max": max(samples), "n": REPEAT})
    flops = workload.flops_per_step()
    row["tflops"] = flops / (median / 1e3) / 1e12 if flops else None
    facts = workload.extra()
    for key in ("error_vs_fp64", "kv_bytes_contiguous", "kv_bytes_paged", "int8_path",
                "k_sweep", "greedy_ms", "acceptance_rate", "tokens_equal_greedy"):
        if key in facts:
            row[key] = facts[key]
    torch.cuda.empty_cache()  # the workload's tensors go when this frame returns
    return row


def main() -> int:
    global WARMUP, REPEAT
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        WARMUP, REPEAT = 1, 3
    clock_start = sm_clock_mhz()
    rows: list[dict[str, Any]] = []
    parts = []
    for preset in ("8k", "32k"):
        for mask in ("causal", "sliding", "block_sparse"):
            for variant in ("naive", "sdpa", "flex"):
                if preset == "32k" and variant == "naive" and mask != "causal":
                    continue  # one OOM data point is enough
                parts.append((AttentionWorkload, "attention", preset,
                              {"variant": variant, "mask": mask}))
    parts += [(PagedDecodeWorkload, "paged", "h100", {"variant": v})
              for v in ("contiguous", "paged")]
    parts += [(GemmWorkload, "gemm", "8192", {"variant": v})
              for v in ("fp32", "tf32", "bf16", "fp8_tensor", "fp8_row", "int8_wo", "sparse24")]
    parts += [(GemmWorkload, "gemm", "decode", {"variant": v})
              for v in ("bf16", "fp8_row", "int8_wo")]
    parts.append((SpecDecodeWorkload, "specdec", "small", {"variant": "speculative"}))
    for cls, name, preset, params in parts:
        row = measure_variant(cls, name, preset, **params)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "k_sweep"}, default=str),
              flush=True)

    props = torch.cuda.get_device_properties(0)
    metrics: dict[str, Any] = {}
    for row in rows:
        key = "_".join(str(row.get(k)) for k in ("workload", "preset", "mask", "variant")
                       if row.get(k) is not None)
        if "ms" in row:
            metrics[key + "_ms"] = {**row["ms"], "unit": "ms"}
            if row.get("tflops"):
                metrics[key + "_tflops"] = {"median": row["tflops"], "unit": "TFLOP/s"}
            if row.get("peak_mem_bytes") is not None:
                metrics[key + "_peak_mem_gib"] = {"median": row["peak_mem_bytes"] / 2**30,
                                                  "unit": "GiB"}
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip() or None
    clock_end = sm_clock_mhz()
    result = {
        "benchmark": "micro", "command": "python benchmarks/micro.py"
        + (" --quick" if args.quick else ""),
        "device": props.name, "driver": None, "torch": torch.__version__, "commit": sha,
        "date": datetime.date.today().isoformat(),
        "clocks": {"sm_mhz_start": clock_start, "sm_mhz_end": clock_end,
                   "throttle_seen": None},
        "metrics": metrics, "rows": rows,
        "reference": {"what": "each micro-workload's baseline variant (naive attention, "
                      "contiguous KV, fp32 GEMM, greedy decoding) measured in the same run"},
        "notes": f"median of {REPEAT} after {WARMUP} warm-ups; attention presets B1 H32/KV8 "
                 "D128 bf16; GEMM 8192^3 and 16x14336x4096; flex compiled; parity vs baseline "
                 "per row (parity_ok)",
    }
    out = ROOT / "benchmarks" / "results" / f"micro-{props.name.replace(' ', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\n{'workload/preset/mask/variant':<42} {'ms':>9} {'TFLOP/s':>8} {'peak GiB':>9} "
          f"parity")
    for row in rows:
        key = "/".join(str(row.get(k)) for k in ("workload", "preset", "mask", "variant")
                       if row.get(k) is not None)
        if "error" in row:
            print(f"{key:<42} {row['error']}")
            continue
        peak = row.get("peak_mem_bytes")
        print(f"{key:<42} {row['ms']['median']:>9.3f} {row.get('tflops') or 0:>8.1f} "
              f"{(peak or 0) / 2**30:>9.2f} {'ok' if row.get('parity_ok') else 'FAIL'}")
    for row in rows:
        for point in row.get("k_sweep") or []:
            print(f"specdec k={point['k']}: acceptance {point['acceptance_rate']:.2f}, "
                  f"speedup {point['speedup_vs_greedy']:.2f}x, exact "
                  f"{point['tokens_equal_greedy']}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
