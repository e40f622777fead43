"""Every corpus artifact through the whole `aiperf-workbench analyze FILE --json` process and,
for Kineto traces, through HTA (TraceAnalysis + get_gpu_kernel_breakdown), one process each:
our totals against the independent truth (benchmarks/corpus.py), HTA's, time and peak RSS.

    python benchmarks/corpus_bench.py [--inputs] [--no-hta] [--out benchmarks/results/corpus-cpu2.json]

Artifacts: tests/data/external/* with sidecars (absent ones skipped: corpus.py fetch), and with
``--inputs`` the larger ones of benchmarks/corpus_inputs.toml present at their ``local`` path.
Prints a markdown table last (the corpus table of benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
from trace_engine import cli_command, run_measured  # noqa: E402

HTA = """
import json, logging, os, sys, tempfile, warnings
warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
out = {}
try:
    from hta.trace_analysis import TraceAnalysis
    d = tempfile.mkdtemp()
    suffix = ".json.gz" if open(sys.argv[1], "rb").read(2) == b"\\x1f\\x8b" else ".json"
    os.symlink(os.path.abspath(sys.argv[1]), os.path.join(d, "rank-0" + suffix))
    a = TraceAnalysis(trace_dir=d)
    types, kernels = a.get_gpu_kernel_breakdown(visualize=False, duration_ratio=1.0,
                                                num_kernels=10**9, include_memory_kernels=True)
    out = {"total_us": float(kernels["sum (us)"].sum()) if len(kernels) else 0.0}
except Exception as exc:
    out = {"error": (type(exc).__name__ + ": " + str(exc)).splitlines()[0][:160]}
print(json.dumps(out))
"""


def _artifacts(with_inputs: bool) -> list[dict[str, Any]]:
    items = []
    for file, meta in corpus.sidecars():
        if file.exists():
            items.append({"name": file.name, "file": file, "kind": meta["kind"],
                          "source": f"{meta['repo']}@{meta['commit'][:7]}", "truth": meta["truth"]})
    if with_inputs:
        for entry in tomllib.loads((HERE / "corpus_inputs.toml").read_text())["input"]:
            local = Path(entry["local"])
            if local.is_file():
                items.append({"name": entry["name"], "file": local, "kind": entry["kind"],
                              "source": entry.get("repo", entry.get("source", ""))[:40],
                              "truth": corpus.TRUTH[entry["kind"]](local)})
    return items


def _expected(truth: dict[str, Any]) -> tuple[int, int]:
    other = truth.get("other_device_activities") or {}
    if other:
        return sum(v["count"] for v in other.values()), sum(v["dur_ns"] for v in other.values())
    act = truth["gpu_activities"]
    return act["count"], act["total_ns"]


def measure(item: dict[str, Any], hta: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"name": item["name"], "kind": item["kind"], "source": item["source"],
                           "bytes": item["file"].stat().st_size}
    row["truth_count"], row["truth_ns"] = _expected(item["truth"])
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        out = Path(tmp) / "a.json"
        try:
            r = run_measured(cli_command() + ["--home", str(Path(tmp) / "home"), "analyze",
                                       str(item["file"]), "--json", str(out)])
            doc = json.loads(out.read_text())
            row.update(ours_count=doc["kernel_count"], ours_ns=doc["kernel_total_ns"],
                       ours_wall_s=r["wall_s"], ours_rss_mb=r["peak_rss_tree"] / 1e6)
        except SystemExit as exc:
            row["ours_error"] = str(exc).splitlines()[-1][:160]
    row["exact"] = (row.get("ours_count"), row.get("ours_ns")) == (row["truth_count"], row["truth_ns"])
    if hta and item["kind"] == "kineto":
        with tempfile.TemporaryFile() as fh:
            r = run_measured([sys.executable, "-c", HTA, str(item["file"])], stdout=fh)
            fh.seek(0)
            res = json.loads(fh.read().decode().strip().splitlines()[-1])
        row.update(hta_wall_s=r["wall_s"], hta_rss_mb=r["peak_rss_tree"] / 1e6, **{
            k if k == "error" else "hta_total_us": v for k, v in res.items()})
        if "error" in row:
            row["hta_error"] = row.pop("error")
    return row


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| artifact | source | kind | ours: activities, total | truth (independent) | exact | "
           "HTA total | ours s / MB | HTA s / MB |", "| :--- | :--- | :--- | :--- | :--- | :--- | "
           ":--- | ---: | ---: |"]
    for r in rows:
        ours = (f"{r['ours_count']:,}, {r['ours_ns'] / 1e6:,.3f} ms" if "ours_count" in r
                else f"error: {r.get('ours_error', '?')}")
        hta = ("—" if r["kind"] != "kineto" else
               f"{r['hta_total_us'] / 1e3:,.3f} ms ({(r['hta_total_us'] * 1e3 - r['truth_ns']) / r['truth_ns'] * 100:+.1f}%)"
               if "hta_total_us" in r and r["truth_ns"] else
               f"{r['hta_total_us'] / 1e3:,.3f} ms" if "hta_total_us" in r else
               f"fails: {r['hta_error']}" if "hta_error" in r else "not run")
        times = (f"{r['ours_wall_s']:.2f} / {r['ours_rss_mb']:.0f}" if "ours_wall_s" in r else "—")
        htimes = f"{r['hta_wall_s']:.2f} / {r['hta_rss_mb']:.0f}" if "hta_wall_s" in r else "—"
        out.append(f"| `{r['name']}` | {r['source']} | {r['kind']} | {ours} | "
                   f"{r['truth_count']:,}, {r['truth_ns'] / 1e6:,.3f} ms | "
                   f"{'yes' if r['exact'] else '**no**'} | {hta} | {times} | {htimes} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", action="store_true", help="also the larger corpus_inputs.toml files")
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "corpus-cpu2.json")
    args = ap.parse_args()
    rows = []
    for item in _artifacts(args.inputs):
        rows.append(measure(item, not args.no_hta))
        print(f"{item['name']}: {'exact' if rows[-1]['exact'] else 'NOT exact'}", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE.parent, capture_output=True,
                            text=True).stdout.strip()
    result = {"benchmark": "corpus", "command": "python " + " ".join(sys.argv),
              "device": f"CPU {os.cpu_count()} cores (CI box)", "commit": commit,
              "date": datetime.date.today().isoformat(),
              "figures": {"ours": "whole `aiperf-workbench analyze FILE --json OUT` process",
                          "hta": "whole process: TraceAnalysis + get_gpu_kernel_breakdown "
                                 "(all kernels, memory kernels included), sum of per-name us",
                          "truth": "benchmarks/corpus.py, stdlib only"},
              "rows": rows,
              "notes": f"load average {os.getloadavg()[0]:.1f} at the end; one run each"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
