"""Progress of a run on the terminal (stderr): phases, step counters, the last log lines on
failure. One line rewritten in place on a TTY; plain lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO

from workbench.export.escape import term_line


class CliProgress:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.tail: deque[str] = deque(maxlen=20)
        self.started = time.monotonic()
        self._last_phase = ""

    def _write(self, text: str, transient: bool = False) -> None:
        if self.quiet:
            return
        text = term_line(text)  # the child's messages and errors are foreign text
        if self.tty and transient:
            self.stream.write("\r\033[K" + text[:200])
        else:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
        self.stream.flush()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        elapsed = time.monotonic() - self.started
        if kind == "log":
            self.tail.append(str(event.get("line", "")))
        elif kind == "session":
            self._write(f"session {event['run_id']}  ({event['run_dir']})")
        elif kind == "phase":
            phase = str(event.get("phase"))
            if phase != self._last_phase:
                self._last_phase = phase
                msg = event.get("message") or ""
                self._write(f"[{elapsed:6.1f}s] {phase:<9} {msg}".rstrip())
        elif kind == "step" and self.tty:
            i, n = event.get("i", 0), event.get("n", 0)
            self._write(f"[{elapsed:6.1f}s] {event.get('phase', '')} {i}/{n}", transient=True)
        elif kind == "done" and event.get("run_id"):  # the runner's, not the child's
            status = event.get("status")
            line = f"[{elapsed:6.1f}s] {status}"
            if event.get("error"):
                line += f": {event['error']}"
            self._write(line)
