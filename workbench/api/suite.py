"""A continuous benchmark suite, ready for a nightly CI job (`aiperf-workbench suite FILE`).

FILE (TOML or JSON) lists the runs::

    name = "nightly"            # the suite's folder in the home: <home>/suites/<name>/
    threshold_pct = 10          # a slowdown beyond this (and beyond noise) is a regression
    [defaults]                  # any RunSpec field, applied to every run
    workload = "dense"
    device = "cpu"
    repeat = 5
    [[runs]]
    name = "dense-tiny-L0"      # unique; how the summary and the exit message name it
    layers = "L0"               # a string ("L0,L2" / "L0-L3") or a list
    params = { batch = 2 }
    threshold_pct = 20          # optional per-run override

Each run is a session. The summary (JSON + Markdown, timestamped) goes to the suite's folder;
each run is compared with the stored baseline of the same name (analyzers.diff: speedup, its
bootstrap CI and the verdict). Exit 1 when a run failed, regressed beyond its threshold, or
could not be judged (not comparable with its baseline, or no noise estimate: the gate fails
closed), the entries named with the reason; else 0. ``--update-baseline`` stores this pass as
the new baseline (exit 1 only when a run failed).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from workbench.api.runs import EventSink, check_spec, run
from workloads.atomic import write_json_atomic, write_text_atomic
from workloads.errors import WorkbenchError

DEFAULT_THRESHOLD_PCT = 10.0
SPEC_KEYS = ("workload", "preset", "layers", "profiler", "params", "repeat", "warmup",
             "timeout_s", "seed", "device", "nproc_per_node", "nnodes", "rdzv_endpoint")


def load_suite(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"cannot read suite {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from workbench.api import toml_text

            data = toml_text.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise WorkbenchError(f"suite {path} does not parse: {exc}",
                             "TOML (.toml) or JSON (.json)") from None
    runs = data.get("runs", data.get("run"))
    if not isinstance(runs, list) or not runs:
        raise WorkbenchError(f"suite {path} lists no runs", "add [[runs]] tables with a name")
    names = [r.get("name") if isinstance(r, dict) else None for r in runs]
    if any(not isinstance(n, str) or not n for n in names):
        raise WorkbenchError(f"suite {path}: every run needs a name")
    if len(set(names)) != len(names):
        raise WorkbenchError(f"suite {path}: run names must be unique")
    return {"name": str(data.get("name") or path.stem), "runs": runs,
            "defaults": dict(data.get("defaults") or {}),
            "threshold_pct": float(data.get("threshold_pct", DEFAULT_THRESHOLD_PCT))}


def entry_spec(entry: dict[str, Any], defaults: dict[str, Any], suite: str) -> Any:
    from workloads.catalog import parse_layers
    from workloads.spec import RunSpec

    merged = {**defaults, **{k: v for k, v in entry.items()
                             if k not in ("name", "threshold_pct")}}
    unknown = sorted(set(merged) - set(SPEC_KEYS))
    if unknown:
        raise WorkbenchError(f"suite run {entry['name']!r}: unknown keys {', '.join(unknown)}",
                             f"known: name, threshold_pct, {', '.join(SPEC_KEYS)}")
    layers = merged.get("layers", ["L0"])
    merged["layers"] = parse_layers(layers if isinstance(layers, str) else ",".join(layers))
    return RunSpec(**merged, label=f"suite {suite}: {entry['name']}", telemetry=False)


def suite_dir(home: Path, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return home / "suites" / safe


def compare_entry(name: str, record: dict[str, Any], baseline: dict[str, Any] | None,
                  threshold: float) -> dict[str, Any]:
    from analyzers.diff import EXIT_OK, EXIT_REGRESSED, diff_runs, gate

    latency = ((record.get("metrics") or {}).get("latency_ms") or {}).get("median")
    row: dict[str, Any] = {"name": name, "status": record.get("status"), "run_id":
                           record.get("id"), "latency_ms": latency, "baseline_ms": None,
                           "speedup": None, "ci": None, "verdict": None,
                           "threshold_pct": threshold, "regression": False,
                           "undecided": None, "error": record.get("error"), "warnings": []}
    if record.get("status") != RunStatus.OK:
        row["verdict"] = "failed"
        return row
    if baseline is None:
        row["verdict"] = "no baseline"
        return row
    diff = diff_runs(baseline, record)
    decision = gate(diff, threshold)  # fails closed: not comparable / undecidable is no pass
    row.update(baseline_ms=diff.baseline.latency_median_ms, speedup=diff.speedup,
               ci=[diff.ci_low, diff.ci_high] if diff.ci_low is not None else None,
               verdict=diff.verdict, warnings=diff.warnings,
               regression=decision.exit_code == EXIT_REGRESSED,
               undecided=None if decision.exit_code in (EXIT_OK, EXIT_REGRESSED)
               else f"{diff.verdict}: {diff.verdict_reason}")
    return row


def render_summary(summary: dict[str, Any]) -> str:
    from workbench.export.fmt import fmt_num, md_table

    rows = []
    for r in summary["entries"]:
        change = None if r["speedup"] is None else (1 / r["speedup"] - 1) * 100
        rows.append([r["name"], r["status"], fmt_num(r["latency_ms"], 4, "ms"),
                     fmt_num(r["baseline_ms"], 4, "ms"),
                     fmt_num(change, 3, "%") if change is not None else "n/a",
                     r["verdict"] or "n/a", f"{r['threshold_pct']:g}%",
                     "**REGRESSION**" if r["regression"] else
                     "**NOT JUDGED**" if r.get("undecided") else "", r["run_id"]])
    out = [f"# Benchmark suite — {summary['suite']}", "",
           f"{summary['when']}; baseline: {summary['baseline'] or 'none'}"
           + ("; this pass is the new baseline" if summary["updated_baseline"] else ""), "",
           md_table(["run", "status", "latency median", "baseline", "latency change",
                     "verdict", "threshold", "gate", "session"], rows, align="llrrrllll")]
    if summary["regressions"]:
        out += ["", f"Regressions: {', '.join(summary['regressions'])}."]
    if summary.get("undecided"):
        out += ["", "Not judged (the gate fails closed): " + "; ".join(
            f"{r['name']}: {r['undecided']}" for r in summary["entries"] if r.get("undecided"))
            + ". Run with --update-baseline when the change is intended."]
    if summary["failed"]:
        out += ["", f"Failed: {', '.join(summary['failed'])}."]
    return "\n".join(out) + "\n"


@dataclass
class SuitePass:
    """One pass of a suite: its summary (stored as JSON and Markdown in the suite's folder)."""

    summary: dict[str, Any]
    text: str  # the summary as Markdown
    folder: Path
    stamp: str
    baseline_path: Path

    @property
    def failed(self) -> list[str]:
        return list(self.summary["failed"])

    @property
    def regressions(self) -> list[str]:
        return list(self.summary["regressions"])

    @property
    def undecided(self) -> list[dict[str, Any]]:
        return [e for e in self.summary["entries"] if e.get("undecided")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.regressions or self.undecided else 0


def run_suite(path: Path, store: SessionStore, threshold_pct: float | None = None,
              update_baseline: bool = False, on_event: EventSink | None = None,
              cancel: threading.Event | None = None) -> SuitePass:
    """Run every entry (all checked before the first runs) and compare each with the stored
    baseline of the same name; with ``update_baseline`` this pass becomes the baseline."""
    suite = load_suite(path)
    threshold = threshold_pct if threshold_pct is not None else suite["threshold_pct"]
    specs = [(e, check_spec(entry_spec(e, suite["defaults"], suite["name"])))
             for e in suite["runs"]]
    folder = suite_dir(Path(store.home), suite["name"])
    baseline_path = folder / "baseline.json"
    baseline: dict[str, Any] = {}
    if baseline_path.is_file():
        baseline = json.loads(baseline_path.read_text())
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    entries, records = [], {}
    for entry, spec in specs:
        record = run(spec, store, on_event=on_event, cancel=cancel).to_dict()
        records[entry["name"]] = record
        stored = None if update_baseline else (baseline.get("entries") or {}).get(entry["name"])
        # (a baseline written by an older version holds the first record layout)
        base = RunRecord.from_dict(stored).to_dict() if isinstance(stored, dict) else None
        entries.append(compare_entry(entry["name"], record, base,
                                     float(entry.get("threshold_pct", threshold))))
        if cancel is not None and cancel.is_set():
            break
    failed = [e["name"] for e in entries if e["status"] != RunStatus.OK]
    regressions = [e["name"] for e in entries if e["regression"]]
    undecided = [e["name"] for e in entries if e.get("undecided")]
    summary = {"suite": suite["name"], "file": str(path), "when": stamp,
               "baseline": None if update_baseline else baseline.get("when"),
               "updated_baseline": bool(update_baseline), "threshold_pct": threshold,
               "entries": entries, "regressions": regressions, "undecided": undecided,
               "failed": failed}
    text = render_summary(summary)
    write_json_atomic(folder / f"{stamp}.json", summary)
    write_text_atomic(folder / f"{stamp}.md", text)
    if update_baseline and not failed:
        write_json_atomic(baseline_path, {"suite": suite["name"], "when": stamp,
                                          "entries": records})
    return SuitePass(summary, text, folder, stamp, baseline_path)
