"""Trace engine vs HTA on the same Kineto trace, in one run (each in its own process).

    python benchmarks/trace_engine.py TRACE.json [--repeats 3] [--hta-repeats 1] [--no-hta]
        [--name hf_moe_100mb] [--out benchmarks/results/trace_engine-cpu2.json]

Ours: ``load_kineto`` + the kernel and category breakdowns. HTA: ``TraceAnalysis`` on a folder
holding the trace + ``get_gpu_kernel_breakdown``. Both are timed as whole processes (wall
clock, interpreter start and imports included); peak memory is the process's own peak RSS plus
its largest worker's (getrusage; an upper bound: pages a forked worker shares with its parent
count twice; nothing samples memory while the engines run); the largest single-process peak
RSS is recorded too. The reference total
(sum of every kernel / gpu_memcpy / gpu_memset ``dur``) comes from a third process decoding the
file event by event with the standard-library json decoder, and both engines' totals
are checked against it. Prints a short table last and writes the results JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OURS = """
import json, sys
from profilers.parsers.kineto import load_kineto
from analyzers.breakdown import category_breakdown, kernel_breakdown
t = load_kineto(sys.argv[1])
kb, cb = kernel_breakdown(t.kernels), category_breakdown(t.kernels)
RESULT = {"total_us": int(t.kernels["dur_ns"].sum()) / 1000.0, "kernels": len(t.kernels),
          "names": len(kb)}
"""

HTA = """
import json, logging, os, sys, tempfile, warnings
warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis
d = tempfile.mkdtemp()
os.symlink(os.path.abspath(sys.argv[1]), os.path.join(d, "rank-0.json"))
a = TraceAnalysis(trace_dir=d)
types, kernels = a.get_gpu_kernel_breakdown(visualize=False)
RESULT = {"total_us": float(types["sum"].sum()), "kernels": None, "names": len(kernels)}
"""

REFERENCE = """
import json, sys
# Independent of our parser: the standard library's decoder, one event at a time.
dec, total, n, buf, pos = json.JSONDecoder(), 0.0, 0, "", 0
with open(sys.argv[1], encoding="utf-8") as fh:
    while '"traceEvents"' not in buf:
        buf += fh.read(1 << 20)
    pos = buf.index("[", buf.index('"traceEvents"')) + 1
    done = False
    while not done:
        while True:
            while pos < len(buf) and buf[pos] in " \\t\\r\\n,":
                pos += 1
            if pos < len(buf) and buf[pos] == "]":
                done = True
                break
            try:
                ev, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError:
                break
            pos = end
            if ev.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
                total += ev.get("dur", 0)
                n += 1
        if not done:
            more = fh.read(8 << 20)
            if not more:
                raise SystemExit("truncated trace")
            buf, pos = buf[pos:] + more, 0
RESULT = {"total_us": total, "kernels": n}
"""


_RUSAGE = """
import resource
_s, _c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({**RESULT, "maxrss_self_kb": _s.ru_maxrss, "maxrss_children_kb": _c.ru_maxrss}))
"""


def run_measured(code: str, trace: Path) -> dict:
    """Run ``code`` in a fresh interpreter; wall seconds, peak tree RSS (bytes), its JSON line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code + _RUSAGE, str(trace)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.wait()
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({proc.returncode}): {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes the child's own workers
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data = json.loads(out.strip().splitlines()[-1])
    # Peak of the tree, bounded from above: the process's own peak plus its largest worker's
    # (pages a forked worker shares with its parent are counted twice).
    self_kb, workers_kb = data.pop("maxrss_self_kb"), data.pop("maxrss_children_kb")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss": (self_kb + workers_kb) * 1024,
            "peak_rss_one": max(self_kb, workers_kb) * 1024, **data}


def _stats(values: list[float], unit: str) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "unit": unit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hta-repeats", type=int, default=1)
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--no-reference", action="store_true", help="skip the stdlib-json total")
    ap.add_argument("--name", default=None, help="what the trace is (for the notes)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results"
                    / "trace_engine-cpu2.json")
    args = ap.parse_args()
    size = args.trace.stat().st_size
    bound = 1.5 * size + 150e6
    ours = [run_measured(OURS, args.trace) for _ in range(args.repeats)]
    hta = [] if args.no_hta else [run_measured(HTA, args.trace) for _ in range(args.hta_repeats)]
    ref = None if args.no_reference else run_measured(REFERENCE, args.trace)

    def err_pct(total: float) -> float | None:
        return (total - ref["total_us"]) / ref["total_us"] * 100.0 if ref else None

    o_wall = statistics.median(r["wall_s"] for r in ours)
    o_rss = max(r["peak_rss"] for r in ours)
    h_wall = statistics.median(r["wall_s"] for r in hta) if hta else None
    metrics = {
        "ours_wall_s": _stats([r["wall_s"] for r in ours], "s"),
        "ours_cpu_s": _stats([r["cpu_s"] for r in ours], "s"),
        "ours_peak_rss_mb": _stats([r["peak_rss"] / 1e6 for r in ours], "MB"),
        "ours_peak_rss_one_process_mb": _stats([r["peak_rss_one"] / 1e6 for r in ours], "MB"),
        "ours_total_err_pct": {"median": err_pct(ours[0]["total_us"]), "unit": "%"},
        "rss_bound_mb": {"median": bound / 1e6, "unit": "MB"},
        "ours_within_rss_bound": {"median": o_rss <= bound, "unit": "bool"},
        "file_mb": {"median": size / 1e6, "unit": "MB"},
        "gpu_activities": {"median": ours[0]["kernels"], "unit": "rows"},
    }
    if hta:
        metrics["speedup_vs_hta"] = {"median": h_wall / o_wall, "unit": "x"}
        metrics["hta_wall_s"] = _stats([r["wall_s"] for r in hta], "s")
        metrics["hta_cpu_s"] = _stats([r["cpu_s"] for r in hta], "s")
        metrics["cpu_time_ratio_vs_hta"] = {
            "median": statistics.median(r["cpu_s"] for r in hta)
            / statistics.median(r["cpu_s"] for r in ours), "unit": "x"}
        metrics["hta_peak_rss_mb"] = _stats([r["peak_rss"] / 1e6 for r in hta], "MB")
        metrics["hta_total_err_pct"] = {"median": err_pct(hta[0]["total_us"]), "unit": "%"}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "profilers/parsers"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    result = {
        "benchmark": "trace_engine",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "device": f"CPU {os.cpu_count()} cores (CI box)",
        "driver": None, "torch": None, "python": platform.python_version(),
        "commit": commit + ("+uncommitted parser changes" if dirty else ""),
        "date": datetime.date.today().isoformat(),
        "clocks": None,
        "metrics": metrics,
        "reference": {"what": "HTA 0.5 TraceAnalysis + get_gpu_kernel_breakdown, same file, "
                      "same run; totals vs stdlib-json sum of kernel/memcpy/memset dur",
                      "median": h_wall, "reference_total_us": ref["total_us"] if ref else None},
        "notes": f"trace {args.name or args.trace.name} ({size / 1e6:.0f} MB); whole-process "
                 "wall clock incl. interpreter start and imports; peak RSS summed over the "
                 f"process tree (self + worker maxrss, an upper bound); load average {os.getloadavg()[0]:.1f} at the end "
                 "(other jobs on the box inflate wall times; CPU seconds are steadier)",
    }
    # One results object per machine (BENCHMARKS.md); each trace's metrics under its --name.
    label = args.name or args.trace.stem
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = {k: v for k, v in (previous.get("metrics") or {}).items()
            if not k.startswith(label + ".")}
    result["metrics"] = {**kept, **{f"{label}.{k}": v for k, v in metrics.items()}}
    notes = [n for n in (previous.get("notes") or "").split(" | ")
             if n and not n.startswith(f"{label}:")]
    result["notes"] = " | ".join(notes + [f"{label}: {result['notes']}"])
    refs = {k: v for k, v in (previous.get("reference") or {}).items() if k != label}
    result["reference"] = {**refs, label: result["reference"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ntrace {args.trace} ({size / 1e6:.0f} MB), RSS bound {bound / 1e6:.0f} MB")
    print(f"{'engine':<6} {'wall s (median)':>16} {'CPU s':>8} {'peak RSS MB':>12} {'total err %':>12}")
    for name, runs_, wall in (("ours", ours, o_wall), ("HTA", hta, h_wall)):
        if runs_:
            e = err_pct(runs_[0]["total_us"])
            cpu = statistics.median(r["cpu_s"] for r in runs_)
            print(f"{name:<6} {wall:>16.2f} {cpu:>8.2f} {max(r['peak_rss'] for r in runs_) / 1e6:>12.0f} "
                  f"{'n/a' if e is None else f'{e:+.4f}':>12}")
    if hta:
        print(f"speedup vs HTA: {h_wall / o_wall:.1f}x  (results: {args.out})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
