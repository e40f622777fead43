"""Trace engine vs HTA on the same Kineto trace, in one run, as the user meets it.

    python benchmarks/trace_engine.py TRACE.json [--name hf_moe_100mb] [--repeats 5]
        [--hta-repeats 3] [--no-hta] [--mode e2e|component|both] [--split]
        [--baseline COMMIT] [--out benchmarks/results/trace_engine-cpu2.json]

Figures (the results file names each one's kind under "figures"):
- e2e (the headline): the whole ``aiperf-workbench analyze TRACE`` process, and the same with
  ``--json FILE``, exactly as a user runs it (the installed console script, a fresh home; the
  report goes to a pipe). Wall clock from spawn to exit, CPU seconds of the process tree (wait4),
  peak RSS of the tree (the sum of every live process's VmRSS, sampled every 10 ms from /proc:
  an upper bound, pages a forked worker shares with its parent count twice) and of its largest
  process. Totals: the ``--json`` run's ``kernel_total_ns`` / ``kernel_count`` against the
  reference below, exactly.
- HTA (the reference, same run, interleaved with ours): a fresh process running HTA's
  ``TraceAnalysis`` on a folder holding the trace + ``get_gpu_kernel_breakdown``; same meters.
- component (kept for continuity, NOT what a user runs): a child doing ``load_kineto`` + the
  kernel and category breakdowns only.
- split (``--split``): one more ``analyze --json`` run in a child that times each stage of the
  command (parse, every analyzer ``analyze_tables`` calls, advice, markdown, JSON) by wrapping
  the functions: where the whole-process time goes.
- baseline (``--baseline COMMIT``): the same e2e figures (and split) of that commit's code, a
  ``git archive`` of it run ahead of this checkout, interleaved in the same run: before/after.

Every child runs as an installed user's process does: with its bytecode cached (a warm-up run
writes it to a private ``PYTHONPYCACHEPREFIX``; ``PYTHONDONTWRITEBYTECODE`` from the caller's
environment would otherwise recompile every module on every run, ~0.3 s that no user pays).
The reference total (every kernel / gpu_memcpy / gpu_memset ``dur`` in integer ns, decimal
exact) comes from a separate process decoding the file event by event with the standard
library, independent of our parser. Prints a short table last and writes the results JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FIGURES = {
    "e2e": "whole `aiperf-workbench analyze FILE` process (and with `--json FILE`): spawn to "
           "exit, interpreter start, imports, parse, full analysis, report and JSON written",
    "hta": "whole process: HTA TraceAnalysis(trace_dir) + get_gpu_kernel_breakdown, same file, "
           "same run, interleaved with ours",
    "component": "NOT the user's path: a child running load_kineto + kernel/category breakdown "
                 "only (no roofline, temporal, advice, report, JSON)",
    "split": "one `analyze --json` run in a child with each stage's functions wrapped by timers "
             "(seconds per stage; 'other' = interpreter start, imports, CLI glue)",
}

COMPONENT = """
import json, sys
from profilers.parsers.kineto import load_kineto
from analyzers.breakdown import category_breakdown, kernel_breakdown
t = load_kineto(sys.argv[1])
kb, cb = kernel_breakdown(t.kernels), category_breakdown(t.kernels)
print(json.dumps({"total_ns": int(t.kernels["dur_ns"].sum()), "kernels": len(t.kernels)}))
"""

HTA = """
import json, logging, os, sys, tempfile, warnings
warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis
d = tempfile.mkdtemp()
suffix = ".json.gz" if open(sys.argv[1], "rb").read(2) == b"\\x1f\\x8b" else ".json"
os.symlink(os.path.abspath(sys.argv[1]), os.path.join(d, "rank-0" + suffix))
a = TraceAnalysis(trace_dir=d)
types, kernels = a.get_gpu_kernel_breakdown(visualize=False)
print(json.dumps({"total_us": float(types["sum"].sum())}))
"""

REFERENCE = """
import gzip, json, sys
from decimal import ROUND_HALF_EVEN, Decimal
# Independent of our parser: the standard library's decoder, one event at a time, durations
# as exact decimals.
dec = json.JSONDecoder(parse_float=Decimal)
total, n, buf, pos = 0, 0, "", 0
raw = open(sys.argv[1], "rb")
fh = gzip.open(raw, "rt", encoding="utf-8") if raw.read(2) == b"\\x1f\\x8b" else open(sys.argv[1], encoding="utf-8")
raw.seek(0)
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
        if isinstance(ev, dict) and ev.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            total += int((Decimal(ev.get("dur", 0)) * 1000).quantize(Decimal(1), ROUND_HALF_EVEN))
            n += 1
    if not done:
        more = fh.read(8 << 20)
        if not more:
            raise SystemExit("truncated trace")
        buf, pos = buf[pos:] + more, 0
print(json.dumps({"total_ns": total, "kernels": n}))
"""

SPLIT = """
import io, json, os, sys, time, contextlib
T, t0 = {}, time.perf_counter()
TREE = os.environ.get("TRACE_ENGINE_TREE")
if TREE:  # another commit's code (--baseline), ahead of this checkout's editable install
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, TREE)
import analyzers.run_analysis as ra
import analyzers.regions as regions
import analyzers.advice.engine as engine
import profilers.parsers.detect as detect
import profilers.parsers.kineto as kineto
import profilers.parsers._kineto_columns as columns
try:  # the analysis pipeline: workbench.api.pipeline since the front-door split
    import workbench.api.pipeline.analysis as sa
except ImportError:  # a baseline commit from before it
    import sessions.analysis as sa
import workbench.export.json_export as jx
import workbench.export.markdown as md
from workbench.cli import main
T["imports (cli, analyzers, exporters)"] = time.perf_counter() - t0

def timed(mod, name, key):
    fn = getattr(mod, name, None)
    if not callable(fn):
        return
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            T[key] = T.get(key, 0.0) + time.perf_counter() - t
    setattr(mod, name, wrapper)

# parse: the Kineto reader's two stages where it is one, else the whole parse
timed(kineto, "collect", "parse: decode to columns (collect, both processes)")
timed(kineto, "_build", "parse: build the frames (_build)")
timed(detect, "load_artifacts", "parse (load_artifacts, all of it)")
timed(sa, "attach_kernel_costs", "analyzers: attach_kernel_costs")
# every analysis analyze_tables calls, whatever the roofline / budget code is called today
for name, obj in list(vars(ra).items()):
    if callable(obj) and getattr(obj, "__module__", "").startswith("analyzers.") \\
            and name not in ("analyze_tables", "RunAnalysis", "attach_advice") \\
            and not name.startswith("_") and not isinstance(obj, type):
        timed(ra, name, "analyzers: " + name)
timed(engine, "build_facts", "advice: facts")
timed(engine, "run_rules", "advice: rules")
timed(regions, "region_analysis", "analyzers: region_analysis")
timed(md, "render_artifact_report", "markdown report")
timed(jx, "analysis_to_dict", "json: sections")
timed(jx, "dumps", "json: serialize")
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
T["total in process (to main's return)"] = time.perf_counter() - t0
print(json.dumps({"rc": rc, "stages_s": T}), file=sys.stderr)
"""


def _tree_rss(pid: int) -> tuple[int, int]:
    """(sum, max) VmRSS in bytes over ``pid`` and its descendants, now."""
    total = largest = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


_PYCACHE = Path(tempfile.mkdtemp(prefix="trace-engine-pycache-"))


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's process: bytecode cached (here in a private prefix, written
    by the warm-up runs), whatever the caller's PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(_PYCACHE)
    return {**env, **extra}


def run_measured(argv: list[str], stdout: Any = subprocess.DEVNULL, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv``; wall seconds, CPU seconds of the tree, peak tree / single-process RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE,
                            env=env if env is not None else user_env())
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total, largest = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({proc.returncode}): {' '.join(argv)}\n{err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_tree": peak[0], "peak_rss_one": max(peak[1], usage.ru_maxrss * 1024),
            "stderr": err}


def _stdout_json(code: str, trace: Path) -> dict[str, Any]:
    with tempfile.TemporaryFile() as out:
        r = run_measured([sys.executable, "-c", code, str(trace)], stdout=out)
        out.seek(0)
        r.update(json.loads(out.read().decode().strip().splitlines()[-1]))
    return r


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "aiperf-workbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]


def baseline_tree(commit: str) -> Path:
    """``git archive`` of ``commit`` in a temporary folder (its code, this checkout's venv)."""
    tree = Path(tempfile.mkdtemp(prefix=f"trace-engine-{commit[:8]}-"))
    archive = subprocess.run(["git", "archive", commit], capture_output=True, cwd=ROOT, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _tree_cli(tree: Path) -> list[str]:
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
            f"repr(f)]; sys.path.insert(0, {str(tree)!r}); from workbench.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]


def _stats(values: list[float], unit: str) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "unit": unit}


def _meters(prefix: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"{prefix}_wall_s": _stats([r["wall_s"] for r in runs], "s"),
            f"{prefix}_cpu_s": _stats([r["cpu_s"] for r in runs], "s"),
            f"{prefix}_peak_rss_tree_mb": _stats([r["peak_rss_tree"] / 1e6 for r in runs], "MB"),
            f"{prefix}_peak_rss_one_process_mb": _stats([r["peak_rss_one"] / 1e6 for r in runs], "MB")}


def e2e(trace: Path, repeats: int, hta_repeats: int, ref: dict[str, Any] | None,
        baseline: Path | None = None) -> tuple[dict, list[str]]:
    """Whole-process figures for ours (plain, --json), HTA and the baseline commit's code,
    interleaved run by run."""
    cli, plain, with_json, hta = cli_command(), [], [], []
    old_plain: list[dict[str, Any]] = []
    old_json: list[dict[str, Any]] = []
    lines = []
    with tempfile.TemporaryDirectory(prefix="trace-engine-") as tmp:
        home, out = Path(tmp) / "home", Path(tmp) / "analysis.json"
        args = ["--home", str(home), "analyze", str(trace)]
        base = cli + args
        old = _tree_cli(baseline) + args if baseline is not None else None
        run_measured(base)  # warm-up: page cache, .pyc files
        if old is not None:
            run_measured(old)
        for i in range(repeats):
            plain.append(run_measured(base))
            with_json.append(run_measured(base + ["--json", str(out)]))
            if old is not None:
                old_plain.append(run_measured(old))
                old_json.append(run_measured(old + ["--json", str(Path(tmp) / "old.json")]))
            if i < hta_repeats:
                hta.append(_stdout_json(HTA, trace))
        doc = json.loads(out.read_text())
        if old is not None:
            old_doc = json.loads((Path(tmp) / "old.json").read_text())
    metrics = {**_meters("ours_analyze", plain), **_meters("ours_analyze_json", with_json)}
    if old is not None:
        metrics.update({**_meters("baseline_analyze", old_plain),
                        **_meters("baseline_analyze_json", old_json)})
        metrics["baseline_same_analysis"] = {"median": _same_analysis(old_doc, doc),
                                             "unit": "bool"}
        # before/after in the same run: wall and CPU seconds (CPU holds better under load)
        for key, mine, theirs in (("analyze", plain, old_plain),
                                  ("analyze_json", with_json, old_json)):
            for meter, label in (("wall_s", "speedup"), ("cpu_s", "cpu_ratio")):
                metrics[f"{label}_{key}_vs_baseline"] = {
                    "median": statistics.median(r[meter] for r in theirs)
                    / statistics.median(r[meter] for r in mine), "unit": "x"}
        lines.append(f"{'baseline: analyze':<24} {_row(old_plain)}")
        lines.append(f"{'baseline: analyze --json':<24} {_row(old_json)}")
    metrics["ours_kernel_total_ns"] = {"median": doc["kernel_total_ns"], "unit": "ns"}
    metrics["ours_kernel_count"] = {"median": doc["kernel_count"], "unit": "rows"}
    if ref:
        metrics["ours_total_exact"] = {"median": doc["kernel_total_ns"] == ref["total_ns"]
                                       and doc["kernel_count"] == ref["kernels"], "unit": "bool"}
    lines.append(f"{'ours: analyze':<24} {_row(plain)}")
    lines.append(f"{'ours: analyze --json':<24} {_row(with_json)}")
    if hta:
        metrics.update(_meters("hta", hta))
        h = statistics.median(r["wall_s"] for r in hta)
        metrics["speedup_analyze_vs_hta"] = {
            "median": h / statistics.median(r["wall_s"] for r in plain), "unit": "x"}
        metrics["speedup_analyze_json_vs_hta"] = {
            "median": h / statistics.median(r["wall_s"] for r in with_json), "unit": "x"}
        # CPU seconds of each process tree: steadier than wall clock on a shared box
        hc = statistics.median(r["cpu_s"] for r in hta)
        metrics["cpu_ratio_analyze_vs_hta"] = {
            "median": hc / statistics.median(r["cpu_s"] for r in plain), "unit": "x"}
        metrics["cpu_ratio_analyze_json_vs_hta"] = {
            "median": hc / statistics.median(r["cpu_s"] for r in with_json), "unit": "x"}
        if ref:
            metrics["hta_total_err_pct"] = {
                "median": (hta[0]["total_us"] * 1000 - ref["total_ns"]) / ref["total_ns"] * 100,
                "unit": "%"}
        lines.append(f"{'HTA':<24} {_row(hta)}")
    return metrics, lines


def _same_analysis(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The two commits' --json analyses are the same document (sections, totals, advice)."""
    return a == b


def _row(runs: list[dict[str, Any]]) -> str:
    wall = [r["wall_s"] for r in runs]
    return (f"{statistics.median(wall):8.2f} s ({min(wall):.2f}-{max(wall):.2f}, n={len(runs)})"
            f" {statistics.median(r['cpu_s'] for r in runs):7.2f} s CPU"
            f" {max(r['peak_rss_tree'] for r in runs) / 1e6:8.0f} MB tree"
            f" {max(r['peak_rss_one'] for r in runs) / 1e6:7.0f} MB one")


def split(trace: Path, tree: Path | None = None) -> dict[str, Any]:
    """Seconds per stage of one ``analyze --json`` (``tree``: another commit's code)."""
    env = user_env(**({"TRACE_ENGINE_TREE": str(tree)} if tree is not None else {}))
    with tempfile.TemporaryDirectory(prefix="trace-engine-") as tmp:
        argv = [sys.executable, "-c", SPLIT, "--home", str(Path(tmp) / "home"),
                "analyze", str(trace), "--json", str(Path(tmp) / "a.json")]
        run_measured(argv, env=env)  # warm-up: its bytecode
        r = run_measured(argv, env=env)
    stages = json.loads(r["stderr"].strip().splitlines()[-1])["stages_s"]
    in_process = stages.pop("total in process (to main's return)")
    parse = stages.get("parse (load_artifacts, all of it)", 0.0)
    inner = [k for k in stages if k.startswith("parse: ")]
    if inner:  # the Kineto stages are inside load_artifacts: what is left of it
        stages["parse (load_artifacts, all of it)"] = parse - sum(stages[k] for k in inner)
        stages["parse: the rest (detect, merge)"] = stages.pop("parse (load_artifacts, all of it)")
    stages["other in process (CLI glue, unwrapped code)"] = in_process - sum(stages.values())
    stages["interpreter start and exit"] = r["wall_s"] - in_process
    stages["whole process"] = r["wall_s"]
    stages["whole process CPU (both processes)"] = r["cpu_s"]
    return {k: round(v, 4) for k, v in stages.items()}


def _merge(out: Path, label: str, result: dict[str, Any]) -> dict[str, Any]:
    """One results object per machine (BENCHMARKS.md); each trace's figures under its label.
    Figures of older runs without a kind prefix were component figures: labelled so."""
    previous = json.loads(out.read_text()) if out.is_file() else {}
    kept, relabelled = {}, set()
    for key, value in (previous.get("metrics") or {}).items():
        name, _, rest = key.partition(".")
        if name == label:
            continue
        if rest.split(".", 1)[0] not in ("e2e", "component", "split", "split_baseline", "file_mb",
                                         "rss_bound_mb", "load_average"):
            key, _ = f"{name}.component.{rest}", relabelled.add(name)
        kept[key] = value
    result["metrics"] = {**kept, **result["metrics"]}
    notes = [n for n in (previous.get("notes") or "").split(" | ") if n and not n.startswith(f"{label}:")]
    notes = [n.replace(": ", ": COMPONENT figures only (load_kineto + breakdowns in a child, not "
                       "the analyze command); ", 1)
             if n.split(":", 1)[0] in relabelled else n for n in notes]
    result["notes"] = " | ".join(notes + [result["notes"]])
    refs = {k: v for k, v in (previous.get("reference") or {}).items() if k != label}
    result["reference"] = {**refs, label: result["reference"]}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", type=Path)
    ap.add_argument("--name", default=None, help="label of this trace in the results file")
    ap.add_argument("--mode", choices=("e2e", "component", "both"), default="e2e")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hta-repeats", type=int, default=3)
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--split", action="store_true", help="also time each stage of analyze")
    ap.add_argument("--no-reference", action="store_true", help="skip the stdlib-json total")
    ap.add_argument("--what", default="", help="what the trace is, for the notes")
    ap.add_argument("--baseline", metavar="COMMIT", help="also time this commit's analyze")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "trace_engine-cpu2.json")
    args = ap.parse_args()
    label, size = args.name or args.trace.stem, args.trace.stat().st_size
    bound = 1.5 * size + 150e6
    ref = None if args.no_reference else _stdout_json(REFERENCE, args.trace)
    metrics: dict[str, Any] = {"file_mb": {"median": size / 1e6, "unit": "MB"},
                               "rss_bound_mb": {"median": bound / 1e6, "unit": "MB"}}
    tree = baseline_tree(args.baseline) if args.baseline else None
    load_before = os.getloadavg()
    lines = []
    if args.mode in ("e2e", "both"):
        m, lines = e2e(args.trace, args.repeats, 0 if args.no_hta else args.hta_repeats, ref,
                       baseline=tree)
        for key in ("ours_analyze", "ours_analyze_json"):
            m[f"{key}_within_rss_bound"] = {
                "median": m[f"{key}_peak_rss_tree_mb"]["max"] <= bound / 1e6, "unit": "bool"}
        metrics.update({f"e2e.{k}": v for k, v in m.items()})
    if args.mode in ("component", "both"):
        runs = [_stdout_json(COMPONENT, args.trace) for _ in range(args.repeats)]
        metrics.update({f"component.{k}": v for k, v in _meters("ours", runs).items()})
        if ref:
            metrics["component.ours_total_exact"] = {"median": runs[0]["total_ns"] == ref["total_ns"],
                                                     "unit": "bool"}
        lines.append(f"{'component (not e2e)':<24} {_row(runs)}")
    if args.split:
        metrics.update({f"split.{k}_s": {"median": v, "unit": "s"} for k, v in split(args.trace).items()})
        if tree is not None:
            metrics.update({f"split_baseline.{k}_s": {"median": v, "unit": "s"}
                            for k, v in split(args.trace, tree).items()})
    load_after = os.getloadavg()
    metrics["load_average"] = {"median": round((load_before[0] + load_after[0]) / 2, 2),
                               "min": round(min(load_before[0], load_after[0]), 2),
                               "max": round(max(load_before[0], load_after[0]), 2),
                               "unit": "1-min load, before and after the run"}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    import importlib.metadata as md

    result = {
        "benchmark": "trace_engine",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "device": f"CPU {os.cpu_count()} cores (CI box)",
        "driver": None, "torch": None, "python": platform.python_version(),
        "commit": commit + ("+uncommitted changes" if dirty else ""),
        "date": datetime.date.today().isoformat(),
        "clocks": None,
        "figures": FIGURES,
        "metrics": {f"{label}.{k}": v for k, v in metrics.items()},
        "reference": {"what": f"HTA {md.version('HolisticTraceAnalysis')} (pandas "
                      f"{md.version('pandas')}) TraceAnalysis + get_gpu_kernel_breakdown, same "
                      "file, same run; totals vs a stdlib-json decimal sum of kernel/memcpy/memset dur",
                      "reference_total_ns": ref["total_ns"] if ref else None,
                      "reference_kernels": ref["kernels"] if ref else None},
        "notes": f"{label}: {args.what or args.trace.name} ({size / 1e6:.0f} MB); load average "
                 f"{load_before[0]:.1f} before, {load_after[0]:.1f} after on {os.cpu_count()} cores "
                 "(other jobs share the box: ratios of the same run hold better than absolute "
                 "times)" + (f"; baseline = commit {args.baseline} (git archive, same venv)"
                             if args.baseline else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_merge(args.out, label, result), indent=2) + "\n")
    print(f"\ntrace {args.trace} ({size / 1e6:.0f} MB), RSS bound {bound / 1e6:.0f} MB, "
          f"reference {ref['kernels'] if ref else '?'} activities, {ref['total_ns'] if ref else '?'} ns")
    for line in lines:
        print(line)
    if "e2e.speedup_analyze_vs_hta" in metrics:
        print(f"speedup vs HTA (whole process): analyze {metrics['e2e.speedup_analyze_vs_hta']['median']:.1f}x,"
              f" analyze --json {metrics['e2e.speedup_analyze_json_vs_hta']['median']:.1f}x;"
              f" CPU ratio {metrics['e2e.cpu_ratio_analyze_vs_hta']['median']:.1f}x,"
              f" {metrics['e2e.cpu_ratio_analyze_json_vs_hta']['median']:.1f}x")
    if "e2e.speedup_analyze_vs_baseline" in metrics:
        print(f"vs baseline {args.baseline} (same run): analyze "
              f"{metrics['e2e.speedup_analyze_vs_baseline']['median']:.2f}x wall, "
              f"{metrics['e2e.cpu_ratio_analyze_vs_baseline']['median']:.2f}x CPU; --json "
              f"{metrics['e2e.speedup_analyze_json_vs_baseline']['median']:.2f}x wall, "
              f"{metrics['e2e.cpu_ratio_analyze_json_vs_baseline']['median']:.2f}x CPU")
    if args.split:
        for k, v in metrics.items():
            if k.startswith("split."):
                before = metrics.get("split_baseline." + k[len("split."):], {}).get("median")
                print(f"  {k[6:-2]:<52} {v['median']:7.3f} s"
                      + (f"   (baseline {before:7.3f} s)" if before is not None else ""))
    print(f"(results: {args.out})")


if __name__ == "__main__":
    main()
