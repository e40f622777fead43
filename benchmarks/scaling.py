"""Multi-GPU scaling on one host: dense tensor parallel and MoE expert parallel under torchrun.

    python benchmarks/scaling.py [--gpus 1,2] [--workloads dense,moe] [--repeat 20] [--no-trace]

Per workload, one timer session per GPU count (the same runs as `aiperf-workbench scale`):
  dense  llama-3.1-8b, layers L0-L4 (static KV cache, SDPA, CUDA graphs), batch-1 decode;
         tensor parallel: column-parallel QKV / gate-up, row-parallel o / down + all-reduce
  moe    moe/full (DeepSeek-style, 64 experts top-6, batch 8), layers L0 + L6-moe-grouped;
         expert parallel: experts split over ranks, all-to-all dispatch
then (unless --no-trace) one torch-profiler session at the largest count, whose multi-rank
analysis gives each rank's GPU time in compute and in NCCL kernels and their overlap. The
reference is the 1-GPU point of the same sweep (speedup, efficiency per GPU). NVLink
multicast stays off (the launcher sets NCCL_NVLS_ENABLE=0). Writes
benchmarks/results/scaling-<device>-x<max gpus>.{json,md}; prints the tables last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.scaling import knee_index, scaling_efficiency, speedups  # noqa: E402
from sessions.records import RunStatus  # noqa: E402
from sessions.store import SessionStore  # noqa: E402
from workbench.api.pipeline.analysis import load_run_analysis  # noqa: E402
from workbench.api.runs import run  # noqa: E402
from workbench.export.sweep_md import render_scale  # noqa: E402
from workloads.spec import RunSpec  # noqa: E402

CONFIGS = {
    "dense": {"preset": "llama-3.1-8b", "layers": ["L0", "L1", "L2", "L3", "L4"],
              "parallel": "tensor parallel"},
    "moe": {"preset": "full", "layers": ["L0", "L6-moe-grouped"],
            "parallel": "expert parallel"},
}


def _spec(workload: str, gpus: int, profiler: str, args: argparse.Namespace,
          repeat: int) -> RunSpec:
    cfg = CONFIGS[workload]
    layers = [name for name in cfg["layers"] if args.device == "cuda" or name != "L4"]
    return RunSpec(workload=workload, preset="tiny" if args.tiny else cfg["preset"],
                   layers=layers, profiler=profiler, repeat=repeat, warmup=2,
                   timeout_s=args.timeout, device=args.device, telemetry=True,
                   nproc_per_node=gpus,
                   label=f"benchmarks/scaling {workload} x{gpus}")


def _point(record: Any, gpus: int) -> dict[str, Any]:
    metrics = record.metrics or {}
    lat = metrics.get("latency_ms") or {}
    tokens = metrics.get("tokens_per_step")
    samples = [s for s in lat.get("samples") or [] if s]
    per_s = [tokens * 1e3 / s for s in samples] if tokens else []
    telemetry = record.telemetry or {}
    return {"gpus": gpus, "status": str(record.status), "error": record.error, "run_id": record.id,
            "latency_ms": lat.get("median"), "latency_min_ms": lat.get("min"),
            "latency_max_ms": lat.get("max"), "n": lat.get("n"),
            "tokens_per_s": metrics.get("tokens_per_s"),
            "tokens_per_s_min": min(per_s) if per_s else None,
            "tokens_per_s_max": max(per_s) if per_s else None,
            "parity_ok": (record.parity or {}).get("ok"),
            "sm_mhz_min": telemetry.get("sm_mhz_min"), "sm_mhz_max": telemetry.get("sm_mhz_max"),
            "throttle_seen": telemetry.get("throttle_seen")}


def _trace_summary(store: SessionStore, record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": record.id, "status": str(record.status), "error": record.error}
    if record.status is not RunStatus.OK:
        return out
    analysis = load_run_analysis(store, record)
    d = analysis.distributed
    if d is not None:
        out["source"] = d.source
        out["straggler_rank"] = d.straggler_rank
        out["compute_skew_pct"] = d.compute_skew_pct
        out["ranks"] = [{k: (None if v != v else v) for k, v in row.items()}  # NaN -> None
                        for row in d.per_rank.to_dict("records")]
    if analysis.categories is not None:
        cats = analysis.categories
        out["categories"] = {str(r["category"]): {"time_ns": float(r["total_ns"]),
                                                  "share": float(r["share"])}
                             for r in cats.to_dict("records")}
    return out


def _rank_lines(trace: dict[str, Any]) -> list[str]:
    lines = []
    for r in trace.get("ranks") or []:
        busy = r.get("busy_ns", r.get("wall_ns"))  # GPU kernels, or CPU ops (gloo)
        comp, comm = r.get("compute_ns"), r.get("comm_ns")
        if busy is None or comp is None or comm is None:
            continue
        overlap = r.get("overlap_ns")
        lines.append(f"| {r['rank']} | {busy / 1e6:.2f} ms | {comp / 1e6:.2f} ms | "
                     f"{comm / 1e6:.2f} ms | {100 * (r.get('comm_share') or 0):.1f}% | "
                     + ("n/a" if overlap is None else f"{overlap / 1e6:.2f} ms") + " |")
    if not lines:
        return []
    source = trace.get("source") or "n/a"
    return ["", f"From {source}.", "",
            "| rank | busy | compute | collectives | comm share | overlapped |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |", *lines]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default="1,2", help="GPU counts (default 1,2)")
    parser.add_argument("--workloads", default="dense,moe")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per session")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the torch-profiler run at the largest count")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: gloo ranks, a smoke run of the script (no L4)")
    parser.add_argument("--tiny", action="store_true", help="tiny presets (smoke run)")
    args = parser.parse_args()
    gpus = [int(g) for g in args.gpus.split(",") if g.strip()]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in CONFIGS]
    if unknown or not gpus or min(gpus) < 1:
        print(f"error: workloads must be among {', '.join(CONFIGS)} and --gpus counts >= 1",
              file=sys.stderr)
        return 2
    store = SessionStore(Path(tempfile.mkdtemp(prefix="aiperf-scaling-")))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    result: dict[str, Any] = {
        "benchmark": "scaling",
        "command": " ".join(["python", "benchmarks/scaling.py", *sys.argv[1:]]),
        "commit": commit, "date": datetime.date.today().isoformat(), "metrics": {},
        "workloads": {}}
    markdown: list[str] = []
    ok = True
    for workload in workloads:
        cfg = CONFIGS[workload]
        rows: list[dict[str, Any]] = []
        for count in gpus:
            try:
                record = run(_spec(workload, count, "timer", args, args.repeat), store,
                             cancel=threading.Event())
                if not result.get("device"):
                    env = record.env or {}
                    result.update(device=env.get("device_name"), driver=env.get("driver"),
                                  torch=env.get("torch"))
                rows.append(_point(record, count))
            except Exception as exc:  # one failed point is a row, not the end of the sweep
                traceback.print_exc()
                rows.append({"gpus": count, "status": "failed", "error": repr(exc),
                             "run_id": None, "latency_ms": None, "tokens_per_s": None})
            print(f"{workload} x{count}: {rows[-1]['status']} "
                  f"{rows[-1].get('tokens_per_s') or ''}", file=sys.stderr, flush=True)
        throughput = [r["tokens_per_s"] for r in rows]
        for r, s, e in zip(rows, speedups(throughput), scaling_efficiency(gpus, throughput),
                           strict=True):
            r["speedup"], r["efficiency"] = s, e
        ok &= all(r["status"] == "ok" for r in rows)
        entry: dict[str, Any] = {"preset": cfg["preset"], "layers": cfg["layers"],
                                 "parallelism": cfg["parallel"], "points": rows}
        for r in rows:
            if r["tokens_per_s"] is not None:
                result["metrics"][f"{workload}_x{r['gpus']}_tok_s"] = {
                    "median": r["tokens_per_s"], "min": r.get("tokens_per_s_min"),
                    "max": r.get("tokens_per_s_max"), "n": r.get("n"), "unit": "tok/s"}
            if r.get("efficiency") is not None and r["gpus"] != gpus[0]:
                result["metrics"][f"{workload}_x{r['gpus']}_efficiency"] = {
                    "median": r["efficiency"], "unit": "fraction of linear"}
        meta = {"workload": workload, "preset": "tiny" if args.tiny else cfg["preset"],
                "layers": ",".join(cfg["layers"]), "parallelism": cfg["parallel"],
                "device": args.device, "repeat": args.repeat}
        markdown.append(render_scale(f"Scaling — {workload} / {cfg['preset']} over GPUs",
                                     rows, meta, knee_index(throughput)))
        if not args.no_trace and max(gpus) > 1:
            try:
                record = run(_spec(workload, max(gpus), "torch", args, 5), store,
                             cancel=threading.Event())
                entry["trace"] = _trace_summary(store, record)
            except Exception as exc:
                traceback.print_exc()
                entry["trace"] = {"status": "failed", "error": repr(exc)}
            trace = entry["trace"]
            markdown += [f"### {workload}: where the time goes at {max(gpus)} GPUs "
                         f"(torch profiler, session {trace.get('run_id')}, {trace['status']})",
                         *_rank_lines(trace), ""]
        result["workloads"][workload] = entry
    clocks = [p for e in result["workloads"].values() for p in e["points"]]
    mins = [p["sm_mhz_min"] for p in clocks if p.get("sm_mhz_min")]
    maxs = [p["sm_mhz_max"] for p in clocks if p.get("sm_mhz_max")]
    result["clocks"] = {"sm_mhz_min": min(mins) if mins else None,
                        "sm_mhz_max": max(maxs) if maxs else None,
                        "throttle_seen": any(p.get("throttle_seen") for p in clocks)}
    result["reference"] = {"what": "the 1-GPU point of each sweep, same run",
                           "median": {w: e["points"][0]["tokens_per_s"]
                                      for w, e in result["workloads"].items()}}
    result["notes"] = (f"median of {args.repeat} timed decode steps per point (after 2 warm-up);"
                       " tokens/s min-max from the fastest/slowest step; parity vs L0 checked "
                       "in every point; one host, NVLink, NCCL_NVLS_ENABLE=0")
    device = str(result.get("device") or "unknown").lower().replace(" ", "-")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"scaling-{device}-x{max(gpus)}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = "\n".join(markdown)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"results: {stem}.json, {stem}.md")
    median_eff = [r["efficiency"] for e in result["workloads"].values() for r in e["points"]
                  if r.get("efficiency") is not None]
    if median_eff:
        print(f"efficiency per GPU, median over points: {statistics.median(median_eff):.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
