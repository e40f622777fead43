"""`diff` (two sessions or two artifacts, noise-aware) and `calibrate` (measure roofline
ceilings in a supervised torch child and cache them per device + driver)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from workloads.errors import WorkbenchError

EXIT_OK = 0


def register(sub: Any) -> None:
    diff = sub.add_parser(
        "diff", help="compare two sessions or two artifacts (speedup with a CI, kernel deltas)",
        description="Compare a baseline A with a candidate B: session ids (or unique prefixes) "
        "or artifact paths (Kineto traces, ncu CSV/.ncu-rep, nsys SQLite). Runs of a different "
        "workload, preset, shape, dtype, step or device are not comparable (--force compares "
        "them anyway). Speedup = A median latency / B median latency with a bootstrap 95%% CI "
        "over the repeats (artifacts: their total GPU time, no CI); verdict improved / "
        "regressed / within noise / inconclusive; per-category and per-kernel deltas per "
        "profiled step.")
    diff.add_argument("baseline", metavar="A")
    diff.add_argument("candidate", metavar="B")
    diff.add_argument("--fail-on-regression", type=float, metavar="PCT", default=None,
                      help="CI gate, failing closed: exit 1 when B is slower than A by more "
                      "than PCT percent beyond the noise, 2 when the runs are not comparable "
                      "(workload, preset, shape, dtype, step or device differ), 3 when the "
                      "gate cannot decide (no repeats, no common figure)")
    diff.add_argument("--force", action="store_true",
                      help="compare runs that are not comparable anyway (the differences are "
                      "still listed)")
    diff.add_argument("--top", type=int, default=15, help="kernels to list (default 15)")
    diff.add_argument("--export", type=Path, metavar="FILE", help="write the diff as Markdown")
    diff.add_argument("--json", type=Path, metavar="FILE", help="the diff as JSON ('-' = stdout)")
    diff.set_defaults(handler=cmd_diff)

    cal = sub.add_parser(
        "calibrate", help="measure this machine's roofline ceilings and cache them",
        description="Run GEMM and copy micro-benchmarks with torch in a supervised child "
        "(python -m workloads.calibrate), print them next to the spec sheet, and cache them "
        "in <home>/ceilings.json keyed by device + driver; later analyses use them.")
    cal.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    cal.add_argument("--gemm-n", type=int, default=None, help="GEMM size (default 8192; CPU 2048)")
    cal.add_argument("--copy-mib", type=int, default=None, help="copy size in MiB (default 1024)")
    cal.add_argument("--repeats", type=int, default=None, help="timed repeats (default 20)")
    cal.add_argument("--timeout", type=float, default=900.0, help="seconds (default 900)")
    cal.add_argument("--json", type=Path, metavar="FILE", help="the measurement as JSON ('-' = stdout)")
    cal.set_defaults(handler=cmd_calibrate)


# ---------------------------------------------------------------- diff


def cmd_diff(args: argparse.Namespace) -> int:
    from analyzers.diff import gate
    from sessions.store import default_home
    from workbench.api.pipeline.diff_sides import diff_sides, load_side
    from workbench.export.diff_md import render_diff_markdown

    if args.fail_on_regression is not None and args.fail_on_regression < 0:
        raise WorkbenchError("--fail-on-regression must be >= 0", "e.g. --fail-on-regression 5")
    home = args.home or default_home()
    a, b = load_side(args.baseline, home), load_side(args.candidate, home)
    result = diff_sides(a, b, force=args.force)
    text = render_diff_markdown(result, a.label, b.label, top=args.top, notes=a.notes + b.notes)
    if args.export:
        from workbench.cli.commands import _write_output

        _write_output(args.export, text)
        print(f"diff written to {args.export}", file=sys.stderr)
    if args.json:
        from workbench.cli.commands import _write_output
        from workbench.export.json_export import dumps

        _write_output(args.json, dumps({"baseline": a.label, "candidate": b.label,
                                        "diff": result}))
    if not args.json or str(args.json) != "-":
        from workbench.export.escape import term_text

        sys.stdout.write(term_text(text))
    if args.fail_on_regression is None:
        return EXIT_OK
    decision = gate(result, args.fail_on_regression)
    print(decision.message, file=sys.stderr)
    return decision.exit_code


# ---------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> int:
    from analyzers.ceilings import cache_put, ceilings_from_calibration, spec_ceilings
    from profilers.supervisor import run_supervised
    from sessions.store import default_home
    from workbench.api.pipeline.analysis import load_ceilings_cache, save_ceilings_cache

    home = Path(args.home or default_home())
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiperf-calibrate-") as tmp:
        out = Path(tmp) / "calibration.json"
        cmd = [sys.executable, "-m", "workloads.calibrate", "--out", str(out),
               "--device", args.device]
        for flag, value in (("--gemm-n", args.gemm_n), ("--copy-mib", args.copy_mib),
                            ("--repeats", args.repeats)):
            if value is not None:
                cmd += [flag, str(value)]
        log = home / "logs" / "calibrate.log"
        print(f"calibrating ({args.device}); log: {log}", file=sys.stderr)
        outcome = run_supervised(cmd, log, timeout_s=args.timeout,
                                 cwd=Path(__file__).resolve().parents[2])
        if outcome.status != "exited" or outcome.returncode != 0 or not out.is_file():
            tail = _log_tail(log)
            if outcome.returncode == 2:
                raise WorkbenchError(f"calibrate: {tail or 'bad device'}", "try --device cpu")
            print(f"calibration {outcome.status} (exit {outcome.returncode}): {tail}",
                  file=sys.stderr)
            return 1
        measurement = json.loads(out.read_text())
    ceilings = ceilings_from_calibration(measurement)
    path = save_ceilings_cache(home, cache_put(load_ceilings_cache(home), ceilings))
    spec = spec_ceilings(ceilings.device_name)
    _print_ceilings(measurement, ceilings, spec)
    print(f"cached in {path} under {ceilings.device_name!r} + driver {ceilings.driver!r}; "
          "analyses of this device use these ceilings")
    if args.json:
        from workbench.cli.commands import _write_output
        from workbench.export.json_export import dumps

        _write_output(args.json, dumps({"measurement": measurement,
                                        "ceilings": ceilings.to_dict(),
                                        "spec": spec.to_dict() if spec else None}))
    return EXIT_OK


def _log_tail(log: Path, lines: int = 1) -> str:
    try:
        text = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " / ".join(text[-lines:])


def _print_ceilings(measurement: dict[str, Any], ceilings: Any, spec: Any) -> None:
    from workbench.export.escape import term_line
    from workbench.export.fmt import fmt_rate

    print(f"device {term_line(ceilings.device_name)} ({measurement.get('device_kind')}), "
          f"driver {ceilings.driver or 'n/a'}")
    print(f"{'ceiling':<14} {'measured':>16} {'spec sheet':>16} {'measured/spec':>14}")
    rows = [(f"{p} GEMM", ceilings.peak_flops.get(p), spec.peak_flops.get(p) if spec else None,
             "FLOP/s") for p in ("bf16", "fp8", "tf32", "fp32")]
    rows.append(("copy bandwidth", ceilings.dram_bw, spec.dram_bw if spec else None, "B/s"))
    for label, got, ref, unit in rows:
        ratio = f"{got / ref * 100:.0f}%" if got and ref else "n/a"
        print(f"{label:<14} {fmt_rate(got, unit):>16} {fmt_rate(ref, unit):>16} {ratio:>14}")
    for name, why in (measurement.get("errors") or {}).items():
        print(f"  {name}: not measured ({why})")
