"""`aiperf-workbench serve`: the same Textual app in a browser, through textual-serve.

Each browser tab that connects gets its own app process (``python -m workbench.cli`` with the
same --home), driven over a websocket on the chosen port. It listens on 127.0.0.1 by default:
the app can start workloads on this machine, so exposing it elsewhere is an explicit choice.
Every request needs the random token of this launch, printed in the URL to open; Host and
Origin are checked too (``workbench.cli.serve_guard``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from workloads.errors import WorkbenchError

_CODE_ROOT = str(Path(__file__).resolve().parents[2])


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="open the app in a browser (textual-serve) on a local port",
        description="Serve the terminal app over HTTP + websocket with textual-serve: open "
        "the URL it prints (http://HOST:PORT/?token=...) in a browser; each tab runs its own "
        "app process with the same session store. The token is new at every launch and "
        "required on every request. Ctrl+C stops the server.")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; "
                        "any other address is reachable by others, still only with the token)")
    parser.add_argument("--title", default="aiperf workbench", help="browser page title")
    parser.set_defaults(handler=cmd_serve)


def app_command(home: Path | None) -> str:
    """The shell command textual-serve runs per browser connection."""
    argv = [sys.executable, "-m", "workbench.cli"]
    if home is not None:
        argv += ["--home", str(Path(home).expanduser().resolve())]
    return shlex.join(argv)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise WorkbenchError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                 "pick another --port (or --host)") from None


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise WorkbenchError(f"--port must be 1-65535, got {args.port}")
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        raise WorkbenchError("textual-serve is not installed",
                             "pip install textual-serve (a dependency of aiperf-workbench)") from None
    from workbench.cli.serve_guard import guarded_server, is_loopback, new_token

    _check_port_free(args.host, args.port)
    if not is_loopback(args.host):
        sys.stderr.write(f"aiperf-workbench: warning: serving on {args.host}: reachable from other "
                         "machines; every request must carry the token printed below (keep it "
                         "secret: whoever has it can start runs on this machine)\n")
    # The per-tab app processes must import this code even from an uninstalled checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_CODE_ROOT, os.environ.get("PYTHONPATH")) if p)
    guarded_server(app_command(args.home), host=args.host, port=args.port, title=args.title,
                   token=new_token()).serve()
    return 0
