"""`aiperf-workbench suite FILE` (``workbench.api.suite``): run a benchmark suite file and gate
on regressions against its stored baseline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli.main import stop_event


def _suite_doc() -> str:
    """workbench.api.suite's docstring, read without importing it (every command builds this
    parser; the module brings the run machinery, ~20 ms of imports)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("workbench.api.suite")
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text()), clean=False) or ""


def register(subparsers: Any) -> None:
    doc = _suite_doc()
    suite = subparsers.add_parser(
        "suite", help="run a benchmark suite file and gate on regressions against a baseline",
        description=doc.split("\n\n", 1)[1] if "\n\n" in doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    suite.add_argument("file", type=Path, metavar="FILE", help="suite file (.toml or .json)")
    suite.add_argument("--update-baseline", action="store_true",
                       help="store this pass as the suite's baseline")
    suite.add_argument("--threshold", type=float, default=None, metavar="PCT",
                       help="regression threshold in percent (overrides the file)")
    suite.add_argument("--export", type=Path, metavar="FILE.md", help="also write the summary here")
    suite.add_argument("--quiet", action="store_true")
    suite.set_defaults(handler=cmd_suite)


def cmd_suite(args: argparse.Namespace) -> int:
    from workbench.api.export import write_text
    from workbench.api.sessions import open_store
    from workbench.api.suite import run_suite
    from workbench.cli.progress import CliProgress
    from workbench.export.escape import term_text

    result = run_suite(args.file, open_store(args.home), args.threshold,
                       update_baseline=args.update_baseline,
                       on_event=CliProgress(quiet=args.quiet).on_event, cancel=stop_event())
    sys.stdout.write(term_text(result.text))
    if args.export:
        write_text(args.export, result.text)
    print(f"summary written to {result.folder / (result.stamp + '.md')}", file=sys.stderr)
    if args.update_baseline:
        print("baseline " + ("not updated: a run failed" if result.failed else
                             f"updated: {result.baseline_path}"), file=sys.stderr)
    if result.regressions:
        print(f"REGRESSION beyond threshold: {', '.join(result.regressions)}", file=sys.stderr)
    for entry in result.undecided:
        print(f"NOT JUDGED (gate fails closed): {entry['name']}: {entry['undecided']}",
              file=sys.stderr)
    if result.failed:
        print(f"FAILED: {', '.join(result.failed)}", file=sys.stderr)
    return result.exit_code
