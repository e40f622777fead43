"""The fault-injection pass of tests/reliability at length: many more seeded kills of the CLI
and its child, more bursts of concurrent writers, the full disk and the hostile names.

    python benchmarks/reliability.py [--stub-runs 100] [--real-runs 4] [--writer-bursts 3]
                                     [--seed 17] [--machine cpu2]

Writes benchmarks/results/reliability-<machine>-long.json (the short pass that the test suite
runs writes reliability-<machine>.json) and prints the counts. Every failure count must be 0:
lost (an acknowledged session missing), left_running (a row still running or pending after
the start-up sweep), wrongly_interrupted (a live run swept), folders_without_row, orphans
(a process of a run alive after it), tracebacks, integrity_failures, hangs, unclean_terminal,
unsafe_markdown, storage_failures. Needs root for the tmpfs (else RLIMIT_FSIZE simulates it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability import faults  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stub-runs", type=int, default=100, help="kills per worker")
    parser.add_argument("--real-runs", type=int, default=4, help="real (torch) runs per worker")
    parser.add_argument("--writer-bursts", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--machine", default="cpu2")
    args = parser.parse_args()
    config = {"seed": args.seed, "stub_runs_per_worker": args.stub_runs,
              "real_runs_per_worker": args.real_runs, "workers": args.workers,
              "writer_bursts": args.writer_bursts}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiperf-faults-") as tmp:
        tally = faults.run_all(Path(tmp), args.seed, args.stub_runs, args.real_runs,
                               args.writer_bursts, args.workers)
    out = ROOT / "benchmarks" / "results" / f"reliability-{args.machine}-long.json"
    doc = faults.write_results(tally, out, config, time.monotonic() - started)
    print(json.dumps({k: v for k, v in doc.items() if k != "examples"}, indent=1))
    failures = tally.failures()
    print(f"\n{sum(tally.kills.values())} kills, {doc['acknowledged_sessions']} acknowledged "
          f"sessions, {doc['invocations']} CLI invocations in {doc['wall_s']} s; failures: "
          + (", ".join(f"{k} {v}" for k, v in failures.items() if v) or "none"))
    print(f"written to {out}")
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
