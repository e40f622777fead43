"""`diff` (two sessions or two artifacts, noise-aware) and `calibrate` (measure roofline
ceilings in a supervised torch child and cache them per device + driver)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli.output import to_stdout, write_output
from workbench.export.escape import term_line, term_text
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
    diff.add_argument("--csv", type=Path, metavar="FILE",
                      help="kernel deltas per profiled step as CSV ('-' = stdout)")
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
    from workbench.api.diff import check_gate, diff_targets
    from workbench.api.export import diff_csv, diff_json, diff_markdown

    if args.fail_on_regression is not None and args.fail_on_regression < 0:
        raise WorkbenchError("--fail-on-regression must be >= 0", "e.g. --fail-on-regression 5")
    result = diff_targets(args.baseline, args.candidate, args.home, force=args.force)
    text = diff_markdown(result, top=args.top)
    if args.export:
        write_output(args.export, text)
        print(f"diff written to {args.export}", file=sys.stderr)
    if args.json:
        write_output(args.json, diff_json(result))
    if args.csv:
        write_output(args.csv, diff_csv(result))
    if not to_stdout(args.json) and not to_stdout(args.csv):
        sys.stdout.write(term_text(text))
    if args.fail_on_regression is None:
        return EXIT_OK
    decision = check_gate(result, args.fail_on_regression)
    print(decision.message, file=sys.stderr)
    return decision.exit_code


# ---------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sessions.store import default_home
    from workbench.api.calibrate import CalibrationFailed, calibrate, calibration_log

    home = Path(args.home or default_home())
    print(f"calibrating ({args.device}); log: {calibration_log(home)}", file=sys.stderr)
    result = calibrate(home, args.device, gemm_n=args.gemm_n, copy_mib=args.copy_mib,
                       repeats=args.repeats, timeout_s=args.timeout)
    if isinstance(result, CalibrationFailed):
        print(f"calibration {result.status} (exit {result.returncode}): {result.log_tail}",
              file=sys.stderr)
        return 1
    _print_ceilings(result.measurement, result.ceilings, result.spec)
    print(f"cached in {result.cache} under {result.ceilings.device_name!r} + driver "
          f"{result.ceilings.driver!r}; analyses of this device use these ceilings")
    if args.json:
        from workbench.export.json_export import dumps

        write_output(args.json, dumps({"measurement": result.measurement,
                                       "ceilings": result.ceilings.to_dict(),
                                       "spec": result.spec.to_dict() if result.spec else None}))
    return EXIT_OK


def _print_ceilings(measurement: dict[str, Any], ceilings: Any, spec: Any) -> None:
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
