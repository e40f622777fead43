"""The real installed `aiperf-workbench` in a real terminal: tmux at 80x24 with NO_COLOR.

Keys go in with `tmux send-keys`, the screen comes back with `capture-pane`. The command runs
inside a shell that records the tty settings before and after, so the test can check that the
app restored the terminal when it quit (ctrl+q).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.terminal_tools import require_binary, workbench_command

ROOT = Path(__file__).resolve().parents[2]


# What the run setup screen shows at 80x24 once the GPU probe is back (none on CI).
SETUP_TEXTS = ("Workload", "Dense decoder (Llama-3 style)", "Preset", "tiny", "Profiler", "timer",
               "Layers", "L0 Eager baseline", "L1 TF32 / precision", "^r Run",
               "^q Quit", "f1 Help")


@pytest.fixture(scope="session")
def tmux() -> str:
    return require_binary("tmux", "tmux")


class Tmux:
    """One tmux server on a private socket (never the user's), one session in it."""

    def __init__(self, binary: str, socket_dir: Path) -> None:
        self.binary = binary
        self.socket = str(socket_dir / f"tmux-{uuid.uuid4().hex[:8]}")
        self.session = "wb"

    def __call__(self, *args: str) -> str:
        done = subprocess.run([self.binary, "-S", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def pane_format(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", self.session, fmt).strip()

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.pane()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{what} not shown within {timeout:g}s; the pane:\n{screen}")

    def kill(self) -> None:
        subprocess.run([self.binary, "-S", self.socket, "kill-server"], capture_output=True,
                       timeout=20)


@pytest.fixture
def term(tmux: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    session = Tmux(tmux, tmp_path)
    yield session
    session.kill()


def test_installed_command_in_tmux(term: Tmux, tmp_path: Path) -> None:
    command = " ".join(shlex.quote(part) for part in workbench_command())
    # The shell around the app: tty settings before and after, and the exit code.
    script = (f"before=$(stty -g); {command}; rc=$?; after=$(stty -g); "
              'if [ "$before" = "$after" ]; then tty=restored; else tty=CHANGED; fi; '
              'echo "EXIT rc=$rc tty=$tty"; sleep 60')
    env = {"NO_COLOR": "1", "AIPERF_HOME": str(tmp_path / "home"),
           "AIPERF_CONFIG": str(tmp_path / "none.toml"), "TERM": "xterm-256color",
           "PYTHONPATH": str(ROOT)}
    args = ["new-session", "-d", "-s", term.session, "-x", "80", "-y", "24", "-c", str(ROOT)]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    term(*args, "sh", "-c", script)
    term("set-option", "-t", term.session, "remain-on-exit", "on")

    screen = term.wait_for(lambda s: all(t in s for t in SETUP_TEXTS)
                           and ("No CUDA GPU" in s or "GPU: " in s), "the run setup screen")
    lines = screen.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 80
    assert "aiperf workbench" in lines[0]
    assert term.pane_format("#{alternate_on}") == "1"  # the app draws on the alternate screen

    term("send-keys", "-t", term.session, "F1")
    term.wait_for(lambda s: "app.quit" in s and "setup.run" in s, "the help screen")
    term("send-keys", "-t", term.session, "Escape")
    term.wait_for(lambda s: "L0 Eager baseline" in s, "the setup screen again")
    term("send-keys", "-t", term.session, "F3")
    term.wait_for(lambda s: "0 sessions" in s or "no sessions" in s.lower(),
                  "the (empty) sessions screen")

    term("send-keys", "-t", term.session, "C-q")
    screen = term.wait_for(lambda s: "EXIT rc=" in s, "the app quitting")
    assert "EXIT rc=0 tty=restored" in screen, screen
    # Back on the main screen, cursor shown, mouse reporting off: the terminal is restored.
    assert term.pane_format("#{alternate_on}") == "0"
    assert term.pane_format("#{cursor_flag}") == "1"
    assert term.pane_format("#{mouse_any_flag}") == "0"
    assert "Traceback" not in screen


def test_help_mentions_config(tmp_path: Path) -> None:
    """`aiperf-workbench --help` names the config file and the AIPERF_* overrides."""
    done = subprocess.run([*workbench_command(), "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    for text in ("config.toml", "AIPERF_THEME", "AIPERF_PROFILER", "AIPERF_HOME",
                 "AIPERF_REFRESH_HZ", "AIPERF_CONFIG", "serve"):
        assert text in done.stdout, text


@pytest.mark.torch
def test_run_tiny_export_and_quit_in_tmux(term: Tmux, tmp_path: Path) -> None:
    """Issue 19's walk: start the installed command, run dense/tiny (a real child on the CPU),
    export its report from the app (e, Enter), quit; the Markdown and JSON exist, the
    terminal is restored."""
    command = " ".join(shlex.quote(part) for part in workbench_command())
    script = (f"before=$(stty -g); {command}; rc=$?; after=$(stty -g); "
              'if [ "$before" = "$after" ]; then tty=restored; else tty=CHANGED; fi; '
              'echo "EXIT rc=$rc tty=$tty"; sleep 60')
    work = tmp_path / "work"  # the export's default folder is the current one
    work.mkdir()
    env = {"NO_COLOR": "1", "AIPERF_HOME": str(tmp_path / "home"),
           "AIPERF_CONFIG": str(tmp_path / "none.toml"), "TERM": "xterm-256color",
           "PYTHONPATH": str(ROOT)}
    args = ["new-session", "-d", "-s", term.session, "-x", "80", "-y", "24", "-c", str(work)]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    term(*args, "sh", "-c", script)
    term.wait_for(lambda s: "Run (ctrl+r)" in s and "dense/tiny · L0 · timer" in s,
                  "the run form, checked")
    term("send-keys", "-t", term.session, "C-r")
    screen = term.wait_for(lambda s: "1 Summary" in s and "e Export" in s,
                           "the results of the tiny run", timeout=300)
    run_id = next(line.split()[0] for line in screen.splitlines()
                  if line.strip().endswith("OK")).strip()
    term("send-keys", "-t", term.session, "e")
    term.wait_for(lambda s: "Export session" in s, "the export dialog")
    term("send-keys", "-t", term.session, "Enter")
    term.wait_for(lambda s: "Exported" in s, "the export notification", timeout=120)
    report = work / f"{run_id}.md"
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert report.read_text().startswith("# ") and run_id in report.read_text()
    term("send-keys", "-t", term.session, "C-q")
    screen = term.wait_for(lambda s: "EXIT rc=" in s, "the app quitting")
    assert "EXIT rc=0 tty=restored" in screen, screen
    assert term.pane_format("#{alternate_on}") == "0"
    assert term.pane_format("#{cursor_flag}") == "1"
    assert term.pane_format("#{mouse_any_flag}") == "0"
    assert "Traceback" not in screen
