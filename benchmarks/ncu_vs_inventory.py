"""Bytes per GEMM/GEMV: Nsight Compute's measured DRAM traffic against the operation inventory's
estimate (issue 15, Done-when 2: "the two agree within 15% on bytes per GEMV").

    python benchmarks/ncu_vs_inventory.py NCU_RUN_DIR INVENTORY_RUN_DIR [--out FILE.json]

NCU_RUN_DIR: a `--profiler ncu` session folder (its ncu.csv; the default scope replays one
decoder block). INVENTORY_RUN_DIR: a `--profiler torch` (or timer) session of the same workload
and layers whose result.json holds the child's operation inventory. The block's GEMM kernels
(split-K reduce kernels folded into the GEMM before them) are paired in order with the
inventory's GEMM ops of one decoder block (the inventory's first block's GEMMs). Offline, CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profilers.parsers.detect import load_artifact  # noqa: E402
from workloads.inventory_format import decode  # noqa: E402


def ncu_gemms(run_dir: Path) -> list[dict]:
    parsed = load_artifact(run_dir / "ncu.csv")
    kernels, metrics = parsed.kernels, parsed.metrics
    rd = pd.to_numeric(metrics["dram__bytes_read.sum"], errors="coerce").to_numpy()
    wr = pd.to_numeric(metrics["dram__bytes_write.sum"], errors="coerce").to_numpy()
    out: list[dict] = []
    for i, (name, cat, dur) in enumerate(zip(kernels["name"].astype(str),
                                             kernels["category"].astype(str),
                                             kernels["dur_ns"], strict=True)):
        if cat != "gemm":
            continue
        row = {"kernels": [name], "dur_ns": int(dur), "dram_bytes": float(rd[i] + wr[i])}
        if "splitKreduce" in name and out:
            out[-1]["kernels"].append(name)  # the reduce belongs to the split-K GEMM before it
            out[-1]["dur_ns"] += int(dur)
            out[-1]["dram_bytes"] += row["dram_bytes"]
        else:
            out.append(row)
    return out


def inventory_gemms(run_dir: Path, count: int) -> list[dict]:
    result = json.loads((run_dir / "result.json").read_text())
    # result.json: the child's report under "details" (today's layout) or "extra" (the H200
    # sessions of 2026-12-01, written before the typed records)
    inventory, why = decode((result.get("details") or result.get("extra") or {}).get("inventory"))
    if inventory is None:
        raise SystemExit(f"no inventory in {run_dir}: {why}")
    gemms = [inventory.op(i) for i in range(len(inventory)) if inventory.op(i)["kind"] == "gemm"]
    return [{"op": g["op"], "m": g["m"], "n": g["n"], "k": g["k"], "bytes": g["bytes"],
             "weight_bytes": g["weight_bytes"]} for g in gemms[:count]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ncu_run", type=Path)
    ap.add_argument("inventory_run", type=Path)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "ncu_vs_inventory-nvidia-h200.json")
    args = ap.parse_args()
    measured = ncu_gemms(args.ncu_run)
    estimated = inventory_gemms(args.inventory_run, len(measured))
    rows = []
    for meas, est in zip(measured, estimated, strict=True):
        ratio = meas["dram_bytes"] / est["bytes"] if est["bytes"] else None
        rows.append({"gemm": f"{est['op']} M={est['m']} N={est['n']} K={est['k']}",
                     "ncu_kernels": meas["kernels"], "ncu_dur_ns": meas["dur_ns"],
                     "ncu_dram_bytes": meas["dram_bytes"], "inventory_bytes": est["bytes"],
                     "ratio": ratio})
    ratios = np.array([r["ratio"] for r in rows if r["ratio"] is not None])
    spec = json.loads((args.ncu_run / "spec.json").read_text())
    env = json.loads((args.ncu_run / "result.json").read_text()).get("env") or {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    results = {
        "benchmark": "ncu_vs_inventory",
        "command": "python benchmarks/ncu_vs_inventory.py " + " ".join(
            str(p) for p in (args.ncu_run, args.inventory_run)),
        "device": env.get("device_name"), "driver": env.get("driver"), "torch": env.get("torch"),
        "commit": commit, "date": datetime.date.today().isoformat(),
        "metrics": {"bytes_ratio_ncu_over_inventory": {
            "median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max()), "n": int(len(ratios)), "unit": "x"}},
        "reference": {"what": "the operation inventory's bytes per GEMM (weights + activations), "
                      "recorded by the torch run's child", "target": "within 15%"},
        "rows": rows,
        "notes": (f"ncu run {args.ncu_run.name} ({spec.get('workload')}/{spec.get('preset')} "
                  f"{','.join(spec.get('layers') or [])}, default scope: one decoder block); "
                  f"inventory run {args.inventory_run.name}; split-K reduce kernels folded into "
                  "their GEMM"),
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'GEMM':36s} {'ncu MB':>9s} {'inventory MB':>13s} {'ratio':>7s}")
    for r in rows:
        print(f"{r['gemm'][:36]:36s} {r['ncu_dram_bytes'] / 1e6:9.2f} "
              f"{r['inventory_bytes'] / 1e6:13.2f} {r['ratio']:7.3f}")
    print(f"ratio median {np.median(ratios):.3f} (min {ratios.min():.3f}, max {ratios.max():.3f}); "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
