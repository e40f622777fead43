"""Defect 7, the small ones: a 256+ character id (OSError traceback), `show _` / `show %`
(LIKE wildcards picked an arbitrary session), `--home ""` (silently the current folder), an
analysis session's report ("/? []", "the run did not finish"), the API key in child
environments, `advise --timeout 2` taking 8.9 s, and the user name scrubbed inside kernel
names ("[redacted]_owned_gemm")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.fake_messages_api import FakeMessagesAPI
from tests.reliability.tools import ROOT, TARGETS, cli, one_line_error, saved_session

FAKE_KEY = "sk-ant-api03-FAKE-small-ones-0123456789"


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory) -> tuple[Path, list[str]]:
    home = tmp_path_factory.mktemp("home")
    return home, [saved_session(home), saved_session(home)]


@pytest.mark.parametrize("command", [["show"], ["report"], ["sessions", "delete"],
                                     ["advise"], ["diff"]])
def test_a_very_long_id_is_one_line(two_sessions, command: list[str]) -> None:
    home, ids = two_sessions
    extra = [ids[0]] if command == ["diff"] else []
    line = one_line_error(cli(home, *command, "a" * 300, *extra))
    assert "no session" in line and len(line) < 400


@pytest.fixture(scope="module")
def one_session(tmp_path_factory) -> tuple[Path, str]:
    """One session: a wildcard that matches everything would pick exactly this one."""
    home = tmp_path_factory.mktemp("home1")
    return home, saved_session(home)


@pytest.mark.parametrize("pattern", ["_", "%"])
def test_like_wildcards_match_nothing(one_session, pattern: str) -> None:
    home, run_id = one_session
    assert "no session" in one_line_error(cli(home, "show", pattern))


def test_prefix_and_suffix_lookups_take_text_literally(one_session) -> None:
    from sessions.store import SessionStore
    from workloads.errors import WorkbenchError

    home, run_id = one_session
    store = SessionStore(home)
    assert store.get(run_id).id == run_id
    assert store.get(run_id[:10]).id == run_id and store.get(run_id[-6:]).id == run_id
    for pattern in ("%%", "2%", "_0", "\\", run_id[:4] + "_", "%" + run_id[-3:], ""):
        with pytest.raises(WorkbenchError, match="no session"):
            store.get(pattern)


def test_empty_home_is_an_error_not_the_current_folder(tmp_path: Path) -> None:
    line = one_line_error(cli("", "sessions", "list", cwd=tmp_path))
    assert "--home" in line
    assert list(tmp_path.iterdir()) == []  # nothing created where we stood


def test_analysis_session_report_is_titled_by_its_input(two_sessions) -> None:
    home, ids = two_sessions
    text = cli(home, "report", ids[0]).stdout
    title = text.splitlines()[0]
    assert title == "# aiperf-workbench report — analysis of torch\\_trace.json (kineto)" or \
        title == "# aiperf-workbench report — analysis of torch_trace.json (kineto)", title
    assert "/? []" not in text and "did not finish" not in text


def test_the_api_key_stays_out_of_the_workload_child(tmp_path: Path) -> None:
    dump = tmp_path / "child.json"
    proc = cli(tmp_path / "home", "run", "--target", f"{TARGETS / 'sleepy.py'}:build",
               "--device", "cpu", "--no-telemetry", "--quiet",
               env={"ANTHROPIC_API_KEY": FAKE_KEY, "AIPERF_TEST_DUMP": str(dump),
                    "AIPERF_TEST_SLEEP": "0"})
    assert proc.returncode == 1 and "slept long enough" in proc.stdout, proc.stdout + proc.stderr
    names = json.loads(dump.read_text())["env"]
    assert "ANTHROPIC_API_KEY" not in names and "AIPERF_TEST_DUMP" in names


def test_the_api_key_stays_out_of_any_supervised_child(tmp_path: Path, monkeypatch) -> None:
    from profilers.supervisor import run_supervised

    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", FAKE_KEY)
    code = "import os; print(sorted(k for k in os.environ if k.startswith('ANTHROPIC')))"
    for env in (None, dict(os.environ)):  # calibrate passes none, profilers pass theirs
        run_supervised([sys.executable, "-c", code], tmp_path / "log", timeout_s=60, env=env)
    log = (tmp_path / "log").read_text()
    assert FAKE_KEY not in log and "ANTHROPIC_API_KEY" not in log.replace("$ ", "")


def test_advise_timeout_is_one_deadline(two_sessions) -> None:
    home, ids = two_sessions
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "AIPERF_"))}
    with FakeMessagesAPI("slow", delay_s=20.0) as api:
        env.update({"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": api.base_url,
                    "PYTHONPATH": str(ROOT)})  # AIPERF_LLM_RETRIES left at its default
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--home", str(home),
                                 "advise", ids[0], "--llm", "--yes", "--timeout", "2"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        sent: list[float] = []

        def watch() -> None:
            while proc.poll() is None and not api.requests:
                time.sleep(0.01)
            sent.append(time.monotonic())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        err, failed_at = "", None
        assert proc.stderr is not None
        for line in proc.stderr:  # the failure line, not the interpreter's exit, ends the wait
            err += line
            if "LLM advice failed" in line and failed_at is None:
                failed_at = time.monotonic()
        proc.wait(30)
        watcher.join(5)
    assert proc.returncode == 0 and "timeout" in err and failed_at is not None, err
    waited = failed_at - sent[0]
    assert len(api.requests) == 1, "retried past the deadline"
    assert waited < 3.5, f"--timeout 2 waited {waited:.1f} s after sending"


def test_user_name_is_scrubbed_as_a_word_only() -> None:
    from analyzers.advice.payload import redact

    scrub = ("root", "gpu-box-7", "/home/alice")
    doc = {"kernel": "root_owned_gemm", "user": "run by root on gpu-box-7",
           "other": "gpu-box-70 rooted", "path": "/home/alice/trace.json"}
    out = redact(doc, scrub=scrub)
    assert out["kernel"] == "root_owned_gemm"
    assert out["user"] == "run by [redacted] on [redacted]"
    assert out["other"] == "gpu-box-70 rooted"
    assert "alice" not in out["path"]
