"""`aiperf-workbench` command line. With no subcommand it opens the Textual app.

Exit codes: 0 success; 1 a run that failed, timed out or was cancelled (it is still recorded);
2 bad input (one line on stderr, no traceback). Heavy modules (pandas, textual) are imported
inside the commands that need them; torch is never imported in this process.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from sessions.records import SORT_KEYS, STATUSES
from workbench.cli.arguments import home, param, size
from workloads.errors import WorkbenchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
An AI performance-engineering workbench: run LLM workloads with optimization layers under a
profiler (timer, torch.profiler, Nsight Compute, Nsight Systems) with NVML telemetry, store each
run as a session, and analyze kernels, roofline placement and differences between runs.

Run with no command to open the terminal app; `serve` opens it in a browser.

app settings: a TOML file, <user config dir>/aiperf-workbench/config.toml (on Linux
~/.config/aiperf-workbench/config.toml; another file with $AIPERF_CONFIG), with the keys
theme, default_profiler, home, refresh_hz; the environment overrides it with AIPERF_THEME,
AIPERF_PROFILER, AIPERF_HOME and AIPERF_REFRESH_HZ.

examples:
  aiperf-workbench run --workload dense --preset tiny --profiler torch --export report.md
  aiperf-workbench sessions list
  aiperf-workbench report ID --export report.md
  aiperf-workbench analyze trace.json.gz
"""


# Modules that add subcommands: each has register(subparsers), and sets
# ``handler=callable(args) -> int`` with set_defaults on its parsers. Keep these imports light.
COMMAND_MODULES: list[str] = [
    "workbench.cli.cmd_analysis",
    "workbench.cli.cmd_eval",
    "workbench.cli.cmd_advise",
    "workbench.cli.cmd_ladder",
    "workbench.cli.cmd_serve",
    "workbench.cli.cmd_estimate",
    "workbench.cli.cmd_app",
    "workbench.cli.cmd_sweep",
    "workbench.cli.cmd_suite",
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line and exit code 2 (its default code too)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        sys.stderr.write(f"aiperf-workbench: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiperf-workbench", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=home, default=None,
                        help="session store folder (default: $AIPERF_HOME or the user data dir)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a workload and store it as a session",
                         description="Run a workload with optimization layers under a profiler; "
                         "the run is stored as a session (also when it fails or is cancelled).")
    run.add_argument("--workload", default="dense", help="workload name (see `workloads`); default dense")
    run.add_argument("--preset", default="tiny", help="preset of the workload; default tiny")
    run.add_argument("--layers", default="L0",
                     help="comma-separated layers or a range, e.g. L0,L1 or L0-L5; default L0")
    run.add_argument("--profiler", default="timer",
                     choices=["timer", "torch", "ncu", "nsys", "memory"], help="default timer")
    run.add_argument("--repeat", type=int, default=None,
                     help="measured repeats of the step (default 5; 1 under ncu/nsys, whose "
                     "range covers the measured steps)")
    run.add_argument("--warmup", type=int, default=None,
                     help="warm-up repeats, not measured (default 2; 1 under ncu/nsys)")
    run.add_argument("--timeout", type=float, default=600.0,
                     help="seconds before the run is stopped and recorded as timeout (default 600)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch", type=int, help="batch size (overrides the preset)")
    run.add_argument("--prompt-len", type=int, help="prompt length in tokens (overrides the preset)")
    run.add_argument("--new-tokens", type=int, help="tokens to decode (overrides the preset)")
    run.add_argument("--dtype", help="float32 | bfloat16 | float16 (overrides the preset)")
    run.add_argument("--mode", choices=["decode", "prefill"], help="measured step (default decode)")
    run.add_argument("--param", type=param, action="append", default=[], metavar="KEY=VALUE",
                     help="any other preset parameter; repeatable")
    run.add_argument("--profiler-option", type=param, action="append", default=[],
                     metavar="KEY=VALUE", help="wrapper option, e.g. kernel_regex=gemm, launch_count=50")
    run.add_argument("--no-telemetry", action="store_true", help="do not sample NVML beside the run")
    run.add_argument("--label", default="", help="a free-form label stored with the session")
    run.add_argument("--export", type=Path, metavar="FILE", help="write a Markdown report")
    run.add_argument("--json", type=Path, metavar="FILE", help="write the run record as JSON ('-' = stdout)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--target", default="", metavar="FILE.py:build|MODULE:build|NAME",
                     help="bring your own model: a function returning a Workload (see README)")
    run.add_argument("--checkpoint", default="", metavar="DIR",
                     help="local HF-layout checkpoint (config.json + *.safetensors) to load "
                     "into the workload")
    run.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                     help="ranks on this node under torchrun (dense: tensor parallel, moe: "
                     "expert parallel; NCCL on GPUs, gloo on CPU); default 1")
    run.add_argument("--nnodes", type=int, default=1, help="nodes (torchrun); default 1")
    run.add_argument("--rdzv-endpoint", default="", metavar="HOST:PORT",
                     help="torchrun rendezvous endpoint, needed with --nnodes > 1")

    sessions = sub.add_parser("sessions", help="list or delete stored sessions")
    ssub = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", parser_class=_Parser)
    slist = ssub.add_parser("list", help="list sessions, newest first")
    slist.add_argument("--workload")
    slist.add_argument("--status", choices=list(STATUSES))
    slist.add_argument("--limit", type=int, default=50)
    slist.add_argument("--sort", choices=list(SORT_KEYS), default="created_at",
                       help="column to sort by (default created_at, newest first)")
    slist.add_argument("--ascending", action="store_true", help="smallest / oldest first")
    sdel = ssub.add_parser("delete", help="delete a session and its folder")
    sdel.add_argument("id")

    show = sub.add_parser("show", help="print one session's record")
    show.add_argument("id")

    report = sub.add_parser("report", help="render a stored session as a report")
    report.add_argument("id")
    report.add_argument("--export", type=Path, metavar="FILE", help="Markdown file (default: stdout)")
    report.add_argument("--json", type=Path, metavar="FILE", help="analysis as JSON ('-' = stdout)")
    report.add_argument("--csv", type=Path, metavar="FILE",
                        help="one row per kernel name as CSV ('-' = stdout)")

    analyze = sub.add_parser(
        "analyze", help="analyze a trace or report another program produced",
        description="Analyze a Kineto trace (.json / .json.gz or a folder of per-rank traces), "
        "an Nsight Compute .csv (ncu --csv, with or without --page raw) or .ncu-rep, or an "
        "Nsight Systems .sqlite. "
        "The format is detected from the content.")
    analyze.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    analyze.add_argument("--top", type=int, default=15, help="kernels to list (default 15)")
    analyze.add_argument("--json", type=Path, metavar="FILE", help="analysis as JSON ('-' = stdout)")
    analyze.add_argument("--export", type=Path, metavar="FILE", help="write a Markdown report")
    analyze.add_argument("--save", action="store_true", help="store the analysis as a session")
    analyze.add_argument("--hta", action="store_true",
                         help="also run Holistic Trace Analysis (if installed) on Kineto traces "
                         "and show its numbers next to ours")
    from profilers.parsers._io import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS  # a light module

    analyze.add_argument("--max-bytes", type=size, default=DEFAULT_MAX_BYTES, metavar="N",
                         help="read at most N bytes of content per artifact, decompressed "
                         f"(default {DEFAULT_MAX_BYTES >> 30} GiB; suffixes K, M, G); beyond it "
                         "the command stops with a one-line error (exit 2)")
    analyze.add_argument("--max-events", type=size, default=DEFAULT_MAX_EVENTS, metavar="N",
                         help=f"keep at most N trace events / CSV rows (default "
                         f"{DEFAULT_MAX_EVENTS:,}: a 1 GB Kineto trace holds ~3M)")
    analyze.add_argument("--no-limits", action="store_true",
                         help="lift both limits (a 7 MB gzip can inflate to 20M events and "
                         "tens of GB of memory)")

    sub.add_parser("workloads", help="list workloads, presets and layers")
    for module_name in COMMAND_MODULES:
        import importlib

        importlib.import_module(module_name).register(sub)
    return parser


def _say(text: str) -> None:
    """One line on stderr; after a SIGHUP the terminal may be gone, and that is no error."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# Set by Ctrl-C, SIGTERM and SIGHUP; commands pass it to the runner as its cancel event. The
# KeyboardInterrupt the handler raises can be swallowed when it lands in a finalizer ("Exception
# ignored in ... __del__"), which lost a SIGHUP in the fault-injection pass: the supervisor
# also polls this event, so the stop is never lost.
STOP = threading.Event()


def stop_event() -> threading.Event:
    return STOP


def _interrupt(signum: int, frame: Any) -> None:
    if STOP.is_set():
        # A repeated Ctrl-C / SIGTERM / SIGHUP: stop now. The children are killed here, and no
        # second KeyboardInterrupt is raised — it could land in the cleanup the first one set
        # off (saving the record, printing "cancelled") and end in a traceback.
        supervisor = sys.modules.get("profilers.supervisor")
        if supervisor is not None:
            supervisor.kill_live_groups()
        return
    STOP.set()
    raise KeyboardInterrupt


def stop_signals_like_ctrl_c() -> dict[int, Any]:
    """Ctrl-C, SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) stop a command
    alike: the child is stopped and the session recorded, not left `running`. Returns the
    handlers it replaced."""
    previous: dict[int, Any] = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                previous[sig] = signal.signal(sig, _interrupt)
            except ValueError:  # not the main thread (tests calling main() from a thread)
                break
    return previous


def main(argv: list[str] | None = None) -> int:
    replaced: dict[int, Any] = {}
    STOP.clear()
    try:
        args = build_parser().parse_args(argv)  # (a Ctrl-C while it imports: one line too)
        if args.command is None:
            from workbench.tui.app import run_app

            run_app(args.home)
            return EXIT_OK
        replaced = stop_signals_like_ctrl_c()
        handler = getattr(args, "handler", None)
        if handler is None:
            from workbench.cli import commands

            handler = getattr(commands, f"cmd_{args.command}")
        return int(handler(args) or 0)
    except WorkbenchError as exc:
        _say(f"aiperf-workbench: error: {_terminal_safe(exc.one_line())}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("aiperf-workbench: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except (OSError, sqlite3.Error) as exc:  # storage trouble nothing above named: one line
        _say(f"aiperf-workbench: error: {_terminal_safe(_storage_line(exc))}")
        return EXIT_USAGE
    finally:
        for sig, handler in replaced.items():  # main() called in-process (tests) leaves no trace
            signal.signal(sig, handler)


def _storage_line(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    return f"the session index failed: {exc}"


def _terminal_safe(text: str) -> str:
    from workbench.export.escape import term_text

    return term_text(text)


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    raise SystemExit(main())
