"""The serving load test (seed 001) on one GPU: TTFT / TPOT percentiles at three arrival rates
and the knee of the throughput curve.

    python benchmarks/serve_load.py [--preset small] [--rates 1,2,4,8] [--requests 120]

One session through profilers.runner.run (the front door `aiperf-workbench loadtest` uses):
the serve workload's engine (continuous batching, chunked prefill) over the dense model,
seeded Poisson arrivals, parity of batched vs one-at-a-time decoding checked first. Budget:
about 2 minutes on an H100 (bounded by --requests and --max-duration per rate). Writes
benchmarks/results/serve_load-<device>.json (format of BENCHMARKS.md); prints a table last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sessions.store import SessionStore  # noqa: E402
from workbench.api.runs import run  # noqa: E402
from workbench.cli.cmd_serve import format_loadtest  # noqa: E402
from workloads.spec import RunSpec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--rates", default="1,2,4,8",
                        help="offered rates, req/s (the H200 run of 2026-11-29 at 5,20,80 found "
                        "the small preset saturated below 5 req/s: these bracket its knee)")
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--max-duration", type=float, default=60.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--home", default=None, help="session store (default: a temp dir)")
    args = parser.parse_args()
    params = {"rates": args.rates, "num_requests": args.requests,
              "max_duration_s": args.max_duration}
    command = " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]])
    home = Path(args.home or tempfile.mkdtemp(prefix="aiperf-serve-"))
    result: dict[str, Any] = {"benchmark": "serve_load", "command": command,
                              "date": datetime.date.today().isoformat(), "metrics": {},
                              "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                                       capture_output=True, text=True
                                                       ).stdout.strip() or None}
    loadtest: dict[str, Any] | None = None
    try:
        spec = RunSpec(workload="serve", preset=args.preset, layers=["L0"], params=params,
                       repeat=1, warmup=0, timeout_s=540, device=args.device,
                       label="benchmarks/serve_load")
        record = run(spec, SessionStore(home), cancel=threading.Event())
        env, telemetry = record.env or {}, record.telemetry or {}
        result.update(device=env.get("device_name"), driver=env.get("driver"),
                      torch=env.get("torch"), session=record.id, status=str(record.status),
                      error=record.error, parity=record.parity,
                      clocks={"sm_mhz_min": telemetry.get("sm_mhz_min"),
                              "sm_mhz_max": telemetry.get("sm_mhz_max"),
                              "throttle_seen": telemetry.get("throttle_seen")},
                      telemetry=telemetry)
        loadtest = record.details.get("loadtest")
    except Exception as exc:
        traceback.print_exc()
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    if loadtest:
        result["loadtest"] = loadtest
        for point in loadtest["rates"]:
            rate = f"{point['offered_rate_rps']:g}"
            for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
                dist = point[key]
                result["metrics"][f"rate{rate}_{key}"] = {
                    "median": dist["p50"], "p90": dist["p90"], "p99": dist["p99"],
                    "n": dist["n"], "unit": "ms"}
            for key, unit in (("output_tokens_per_s", "tok/s"),
                              ("request_throughput_rps", "req/s"), ("goodput_rps", "req/s")):
                result["metrics"][f"rate{rate}_{key}"] = {"median": point[key], "unit": unit}
        result["metrics"]["knee_rate_rps"] = {"median": loadtest["knee"]["knee_rate_rps"],
                                              "unit": "req/s"}
    result["reference"] = {"what": "the lowest offered rate of the same sweep (unloaded "
                           "latency) is the reference for the higher ones"}
    result["notes"] = (f"preset {args.preset} (dense, bf16), {args.requests} requests per rate,"
                       f" rates {args.rates} req/s, Poisson arrivals seed 0, greedy decoding, "
                       "one sweep (no repeat); percentiles over requests")
    device = str(result.get("device") or "unknown").replace(" ", "_")
    out = ROOT / "benchmarks" / "results" / f"serve_load-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"session {result.get('session')}: {result.get('status')} {result.get('error') or ''}")
    if loadtest:
        print("\n".join(format_loadtest(loadtest)))
    print(f"results: {out}")
    return 0 if result.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
