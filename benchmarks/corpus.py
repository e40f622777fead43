"""The external-artifact corpus: profiler files other projects wrote, with truth computed here
independently of our parsers (standard library only: json, csv, sqlite3, decimal).

    python benchmarks/corpus.py truth FILE --kind kineto|nsys_sqlite|ncu_csv
    python benchmarks/corpus.py sidecar FILE --repo OWNER/NAME --path P --commit SHA
        --licence MIT --kind K [--blob SHA1] [--date D] [--what TEXT] [--not-committed]
    python benchmarks/corpus.py manifest          # MANIFEST.md + .gitignore from the sidecars
    python benchmarks/corpus.py fetch [--from-mirror DIR]   # the files not in the repository

Each artifact in tests/data/external/ has a sidecar ``<file>.source.json`` (contracts.md):
repo, path, commit, licence, kind, truth, truth_method, plus sha256, bytes, url, what, and
``committed`` (false: the file is fetched, not kept in git; ``fetch`` brings it from its
source at the pinned commit and checks its sha256). MANIFEST.md is generated from the sidecars
so it never drifts; tests/unit/test_corpus.py checks our parsers against every truth.

Truth, per kind:
- kineto: per ``cat`` of complete ("X") events, count and total duration in integer ns (the
  ``dur`` decimal, exact, rounded half-even to 1 ns); the GPU activities our KernelTable holds
  (kernel / memcpy / memset, in both torch's old and new category names); kernel-launch and
  synchronize runtime calls by name; ProfilerStep count; declared rank; the GPU devices.
- nsys_sqlite: per CUPTI_ACTIVITY_KIND_{KERNEL,MEMCPY,MEMSET} table, rows and sum(end-start)
  ns (SQL integers, exact); devices; NVTX_EVENTS and runtime-call rows.
- ncu_csv: the layout (``raw``: one row per launch, metric columns, a units row; ``rows``:
  ncu's default, one row per metric per launch with Metric Name / Unit / Value), launches
  (distinct ID), each launch's gpu__time_duration.sum (else the Duration metric) in ns.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter, defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT / "tests" / "data" / "external"
SIDECAR = ".source.json"

# Our KernelTable's kinds, from Kineto categories old (torch 1.8/1.9) and new.
KINETO_KIND = {"kernel": "kernel", "Kernel": "kernel", "gpu_memcpy": "memcpy", "Memcpy": "memcpy",
               "gpu_memset": "memset", "Memset": "memset"}
RUNTIME_CATS = {"cuda_runtime", "cuda_driver", "Runtime", "mtia_runtime"}
OTHER_DEVICE_CATS = {"mtia_ccp_events"}  # other accelerators' device-side activity
CALL_RE = re.compile(r"(Launch|Synchronize)")
NSYS_KIND = {"CUPTI_ACTIVITY_KIND_KERNEL": "kernel", "CUPTI_ACTIVITY_KIND_MEMCPY": "memcpy",
             "CUPTI_ACTIVITY_KIND_MEMSET": "memset"}
NS_PER = {"nsecond": 1, "ns": 1, "usecond": 1000, "us": 1000, "msecond": 10**6, "ms": 10**6,
          "second": 10**9, "s": 10**9}


def _ns(value: Any, scale: int = 1000) -> int:
    return int((Decimal(str(value)) * scale).quantize(Decimal(1), ROUND_HALF_EVEN))


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")  # type: ignore[return-value]


def kineto_truth(path: Path) -> dict[str, Any]:
    with _open_text(path) as fh:
        doc = json.load(fh, parse_float=Decimal)
    events = doc.get("traceEvents", []) if isinstance(doc, dict) else doc
    cats: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "dur_ns": 0})
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "total_ns": 0})
    calls: Counter[str] = Counter()
    steps, devices = set(), set()
    epoch_us = False
    for e in events:
        if not isinstance(e, dict):
            continue
        cat, name = e.get("cat"), str(e.get("name", ""))
        if m := re.match(r"ProfilerStep\s*#\s*(\d+)", name):
            steps.add(int(m.group(1)))
        if e.get("ph") != "X" or cat is None:
            continue
        dur = _ns(e.get("dur", 0))
        cats[cat]["count"] += 1
        cats[cat]["dur_ns"] += dur
        if cat in KINETO_KIND:
            kinds[KINETO_KIND[cat]]["count"] += 1
            kinds[KINETO_KIND[cat]]["total_ns"] += dur
            devices.add(e.get("pid"))
            epoch_us = epoch_us or Decimal(str(e.get("ts", 0))) > Decimal(10**15)
        elif cat in RUNTIME_CATS and CALL_RE.search(name):
            calls[name] += 1
    info = doc.get("distributedInfo") if isinstance(doc, dict) else None
    return {
        "gpu_activities": {"count": sum(k["count"] for k in kinds.values()),
                           "total_ns": sum(k["total_ns"] for k in kinds.values())},
        "kinds": dict(sorted(kinds.items())),
        "other_device_activities": {c: v for c, v in sorted(cats.items()) if c in OTHER_DEVICE_CATS},
        "cats": dict(sorted(cats.items())),
        "launch_and_sync_calls": dict(sorted(calls.items())),
        "profiler_steps": len(steps),
        "rank": info.get("rank") if isinstance(info, dict) else None,
        "devices": len(devices),
        "ts_epoch_us": epoch_us,
    }


def nsys_truth(path: Path) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    kinds, devices = {}, set()
    for table, kind in NSYS_KIND.items():
        if table not in tables:
            continue
        n, total = con.execute(f"select count(*), coalesce(sum(end - start), 0) from {table}").fetchone()
        if n:
            kinds[kind] = {"count": n, "total_ns": total}
            devices |= {r[0] for r in con.execute(f"select distinct deviceId from {table}")}
    def rows(table: str) -> int | None:
        return con.execute(f"select count(*) from {table}").fetchone()[0] if table in tables else None
    out = {"gpu_activities": {"count": sum(k["count"] for k in kinds.values()),
                              "total_ns": sum(k["total_ns"] for k in kinds.values())},
           "kinds": kinds, "devices": len(devices),
           "nvtx_events": rows("NVTX_EVENTS"), "runtime_calls": rows("CUPTI_ACTIVITY_KIND_RUNTIME")}
    con.close()
    return out


def ncu_truth(path: Path) -> dict[str, Any]:
    with _open_text(path) as fh:
        lines = [ln for ln in fh.read().splitlines() if not ln.startswith("==")]
    rows = list(csv.reader(lines))
    header = rows[0]
    durations: dict[str, int] = {}
    names: set[str] = set()
    if "Metric Name" in header:  # ncu's default layout: one row per metric per launch
        layout, col = "rows", {h: i for i, h in enumerate(header)}
        need = max(col[c] for c in ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value"))
        fallback: dict[str, int] = {}
        for r in rows[1:]:
            if len(r) <= need or r[col["ID"]] == "ID":  # trailing rule columns may be absent
                continue
            launch, metric = r[col["ID"]], r[col["Metric Name"]]
            names.add(r[col["Kernel Name"]])
            unit, value = r[col["Metric Unit"]], r[col["Metric Value"]].replace(",", "")
            if metric == "gpu__time_duration.sum" and unit in NS_PER:
                durations[launch] = _ns(value, NS_PER[unit])
            elif metric == "Duration" and unit in NS_PER:
                fallback[launch] = _ns(value, NS_PER[unit])
            durations.setdefault(launch, None)  # type: ignore[arg-type]
        durations = {k: (v if v is not None else fallback.get(k)) for k, v in durations.items()}  # type: ignore[misc]
    else:  # --page raw: a units row, then one row per launch
        layout, units = "raw", rows[1]
        col = {h: i for i, h in enumerate(header)}
        t = col.get("gpu__time_duration.sum")
        for r in rows[2:]:
            if len(r) < len(header):
                continue
            names.add(r[col["Kernel Name"]])
            value = r[t].replace(",", "") if t is not None else ""
            durations[r[col["ID"]]] = _ns(value, NS_PER[units[t]]) if value and t is not None else None  # type: ignore[assignment]
    known = [v for v in durations.values() if v is not None]
    return {"layout": layout, "launches": len(durations), "kernel_names": len(names),
            "launches_with_duration": len(known),
            "gpu_activities": {"count": len(durations), "total_ns": sum(known)},
            "kinds": {"kernel": {"count": len(durations), "total_ns": sum(known)}}}


TRUTH = {"kineto": kineto_truth, "nsys_sqlite": nsys_truth, "ncu_csv": ncu_truth}
TRUTH_METHOD = {
    "kineto": "stdlib json (parse_float=Decimal): per cat of ph=X events, count and sum of "
              "round_half_even(dur * 1000) ns; kinds = kernel/gpu_memcpy/gpu_memset (or torch "
              "1.8's Kernel/Memcpy/Memset)",
    "nsys_sqlite": "stdlib sqlite3: count(*), sum(end - start) of CUPTI_ACTIVITY_KIND_KERNEL / "
                   "MEMCPY / MEMSET",
    "ncu_csv": "stdlib csv: launches = distinct ID; each launch's gpu__time_duration.sum (else "
               "Duration) times its unit, in ns (Decimal, half-even)",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(folder: Path = EXTERNAL) -> list[tuple[Path, dict[str, Any]]]:
    return [(p.with_name(p.name[: -len(SIDECAR)]), json.loads(p.read_text()))
            for p in sorted(folder.glob(f"*{SIDECAR}"))]


def write_sidecar(file: Path, args: argparse.Namespace) -> Path:
    meta = {
        "repo": args.repo, "path": args.path, "commit": args.commit, "licence": args.licence,
        "kind": args.kind, "what": args.what, "date": args.date,
        "url": f"https://raw.githubusercontent.com/{args.repo}/{args.commit}/{args.path}",
        "git_blob": args.blob, "bytes": file.stat().st_size, "sha256": sha256(file),
        "committed": not args.not_committed,
        "truth": TRUTH[args.kind](file), "truth_method": TRUTH_METHOD[args.kind],
    }
    out = file.with_name(file.name + SIDECAR)
    out.write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _fmt_ns(ns: int) -> str:
    return f"{ns / 1e6:,.3f} ms"


def manifest(folder: Path = EXTERNAL) -> str:
    lines = ["# External artifacts: the corpus", "",
             "Generated by `python benchmarks/corpus.py manifest` from the `*.source.json` "
             "sidecars; do not edit by hand. Files marked *fetched* are not kept in git (public "
             "data from other repositories): `python benchmarks/corpus.py fetch` brings each "
             "from its source at the pinned commit and checks its sha256. "
             "`tests/unit/test_corpus.py` checks our parsers against every truth below. Larger "
             "inputs: `benchmarks/corpus_inputs.toml`.", "",
             "Not found in the public repositories searched: an `nsys export --type json` file "
             "and an ncu CSV in the `--page raw` layout (this repository's own "
             "`tests/data/h100/ncu_raw.csv`, captured on an H100, covers that layout).", "",
             "| file | kind | source (repo @ commit: path) | licence | what | truth (independent) | in git |",
             "| :--- | :--- | :--- | :--- | :--- | :--- | :--- |"]
    for file, meta in sidecars(folder):
        truth = meta["truth"]
        act = truth.get("gpu_activities", {})
        kinds = ", ".join(f"{k} {v['count']:,}" for k, v in (truth.get("kinds") or {}).items())
        extra = []
        if truth.get("layout"):
            extra.append(f"layout {truth['layout']}")
        if truth.get("rank") is not None:
            extra.append(f"rank {truth['rank']}")
        if truth.get("profiler_steps"):
            extra.append(f"{truth['profiler_steps']} ProfilerSteps")
        other = [c for c in (truth.get("cats") or {}) if c.startswith("mtia") or c.endswith("_events")]
        if other:
            extra.append("other device cats: " + ", ".join(other))
        lines.append(
            f"| `{file.name}` | {meta['kind']} | {meta['repo']} @ {meta['commit'][:10]}: "
            f"`{meta['path']}` | {meta['licence']} | {meta.get('what') or ''} | "
            f"{act.get('count', 0):,} activities ({kinds or 'none'}), {_fmt_ns(act.get('total_ns', 0))}"
            f"{'; ' + '; '.join(extra) if extra else ''} | {'yes' if meta.get('committed') else 'fetched'} |")
    return "\n".join(lines) + "\n"


def write_manifest(folder: Path = EXTERNAL) -> None:
    (folder / "MANIFEST.md").write_text(manifest(folder))
    fetched = [f.name for f, meta in sidecars(folder) if not meta.get("committed")]
    (folder / ".gitignore").write_text(
        "# Generated by benchmarks/corpus.py manifest: public data fetched, not kept in git\n"
        + "".join(f"/{name}\n" for name in fetched))


def fetch(folder: Path = EXTERNAL, mirror: Path | None = None) -> list[str]:
    """Bring every sidecar's missing file: from a local mirror of its repository (``git
    cat-file`` of the pinned blob) or its raw GitHub URL; the sha256 must match."""
    done = []
    for file, meta in sidecars(folder):
        if file.exists() and sha256(file) == meta["sha256"]:
            continue
        git_dir = mirror / meta["repo"].replace("/", "+") / "repo" if mirror else None
        if git_dir is not None and git_dir.is_dir() and meta.get("git_blob"):
            data = subprocess.run(["git", "-C", str(git_dir), "cat-file", "blob", meta["git_blob"]],
                                  check=True, capture_output=True).stdout
        else:
            with urllib.request.urlopen(meta["url"], timeout=60) as resp:  # noqa: S310 (pinned https)
                data = resp.read()
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise SystemExit(f"{file.name}: sha256 mismatch, not written")
        file.write_bytes(data)
        done.append(file.name)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("truth")
    t.add_argument("file", type=Path)
    t.add_argument("--kind", choices=sorted(TRUTH), required=True)
    s = sub.add_parser("sidecar")
    s.add_argument("file", type=Path)
    for opt in ("--repo", "--path", "--commit", "--licence"):
        s.add_argument(opt, required=True)
    s.add_argument("--kind", choices=sorted(TRUTH), required=True)
    s.add_argument("--blob")
    s.add_argument("--date")
    s.add_argument("--what", default="")
    s.add_argument("--not-committed", action="store_true")
    sub.add_parser("manifest")
    f = sub.add_parser("fetch")
    f.add_argument("--from-mirror", type=Path, default=None)
    args = ap.parse_args()
    if args.cmd == "truth":
        sys.stdout.write(json.dumps(TRUTH[args.kind](args.file), indent=2) + "\n")
    elif args.cmd == "sidecar":
        print(write_sidecar(args.file, args))
    elif args.cmd == "manifest":
        write_manifest()
        print(EXTERNAL / "MANIFEST.md")
    else:
        print("\n".join(fetch(mirror=args.from_mirror)) or "nothing to fetch")


if __name__ == "__main__":
    sys.exit(main())
