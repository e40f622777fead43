"""LLM advice with the real anthropic client against a local fake Messages API (127.0.0.1,
base-URL override, SSE streaming): the request carries the rule findings and no secrets, paths
or host names; 401 / 429 / timeout / no key degrade to one line with the rules still shown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fake_messages_api import ANSWER_CHUNKS, FakeMessagesAPI

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-ant-api03-FAKE-llm-advice-test-key-0123456789"


def cli(home: Path, env: dict[str, str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=full,
                          input=stdin)


@pytest.fixture(scope="module")
def session(tmp_path_factory, h100_fixtures) -> tuple[Path, str]:
    """A stored session of the real H100 torch trace (analyze --save: no torch needed)."""
    home = tmp_path_factory.mktemp("home")
    proc = cli(home, {}, "analyze", str(h100_fixtures / "torch_trace.json"), "--save")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stderr.strip().split()[-1]
    return home, run_id


def _env(api: FakeMessagesAPI | None, key: str | None = FAKE_KEY, timeout: str = "5") -> dict[str, str]:
    env = {"AIPERF_LLM_RETRIES": "0", "AIPERF_LLM_TIMEOUT": timeout, "AIPERF_LLM_MODEL": "claude-test-model"}
    if key:
        env["ANTHROPIC_API_KEY"] = key
    env["ANTHROPIC_BASE_URL"] = api.base_url if api else "http://127.0.0.1:9"  # port 9: closed
    return env


def test_llm_advice_streams_and_request_carries_findings_only(session, h100_fixtures) -> None:
    home, run_id = session
    with FakeMessagesAPI("ok") as api:
        proc = cli(home, _env(api), "advise", run_id, "--llm", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert len(api.requests) == 1
    req = api.requests[0]
    assert req["path"] == "/v1/messages"
    assert any(FAKE_KEY in v for v in req["headers"].values())  # in a header (x-api-key/Bearer)
    body = req["body"]
    assert body["model"] == "claude-test-model" and body["stream"] is True
    text = body["messages"][0]["content"][0]["text"]
    payload = json.loads(text.split("\n", 1)[1])
    rules = [f["rule"] for f in payload["rule_findings"]]
    # the fixture's median step is busy (its 1.06 s before the first step is not idle time of
    # a step): FP8 is the finding, with the microseconds it can win back per step
    assert rules == ["fp8_eligible_gemms"]
    assert payload["rule_findings"][0]["evidence"][0]["metric"] == \
        "bf16/fp16 GEMM share of GPU time"
    assert payload["rule_findings"][0]["recoverable_us"] > 0
    assert payload["analysis"]["top_kernels"][0]["name"].startswith("nvjet_sm90_tst")
    raw = req["raw"]
    # no secrets, no paths, no host names in what left the machine
    assert FAKE_KEY not in raw
    assert str(h100_fixtures) not in raw and str(home) not in raw and "/work/" not in raw
    assert socket.gethostname() not in raw
    # the shown payload is exactly the body sent (less the SDK's "stream": true)
    shown = proc.stdout.split("request (Messages API):\n", 1)[1].split("\n--- end of request ---")[0]
    envelope, shown_text = shown.split("\nuser message text:\n")
    assert json.loads(envelope) == {k: v for k, v in body.items() if k not in ("stream", "messages")}
    assert shown_text == text
    # streamed to the terminal and stored with the session
    assert "".join(ANSWER_CHUNKS) in proc.stdout
    stored = json.loads((home / "runs" / run_id / "record.json").read_text())["llm_advice"]
    assert stored["text"] == "".join(ANSWER_CHUNKS) and stored["output_tokens"] == 17
    assert FAKE_KEY not in json.dumps(stored)
    # and it is part of the report
    report = cli(home, {}, "report", run_id)
    assert "## Advice" in report.stdout and "### LLM advice (claude-test-model" in report.stdout
    assert "".join(ANSWER_CHUNKS) in report.stdout


def test_allow_paths_lets_the_input_path_through(session, h100_fixtures) -> None:
    home, run_id = session
    with FakeMessagesAPI("ok") as api:
        proc = cli(home, _env(api), "advise", run_id, "--llm", "--yes", "--allow-paths")
    assert proc.returncode == 0, proc.stderr
    assert str(h100_fixtures / "torch_trace.json") in api.requests[0]["raw"]
    assert FAKE_KEY not in api.requests[0]["raw"]


@pytest.mark.parametrize("mode,needle", [("401", "HTTP 401"), ("429", "HTTP 429"),
                                         ("slow", "timeout")])
def test_errors_degrade_to_one_line_with_rules(session, mode: str, needle: str) -> None:
    home, run_id = session
    before = json.loads((home / "runs" / run_id / "record.json").read_text())
    with FakeMessagesAPI(mode, delay_s=3.0) as api:
        proc = cli(home, _env(api, timeout="1"), "advise", run_id, "--llm", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "1. bf16/fp16 GEMMs take 84% of GPU time" in proc.stdout  # the rules are still shown
    failures = [ln for ln in proc.stderr.splitlines() if "LLM advice failed" in ln]
    assert len(failures) == 1 and needle in failures[0], proc.stderr
    assert "Traceback" not in proc.stderr and FAKE_KEY not in proc.stderr + proc.stdout
    after = json.loads((home / "runs" / run_id / "record.json").read_text())
    assert after.get("llm_advice") == before.get("llm_advice")


def test_no_key_and_no_network(session) -> None:
    home, run_id = session
    proc = cli(home, _env(None, key=None), "advise", run_id, "--llm", "--yes")
    assert proc.returncode == 0 and "no API key" in proc.stderr and "1. bf16/fp16 GEMMs take 84% of GPU time" in proc.stdout
    proc = cli(home, _env(None), "advise", run_id, "--llm", "--yes")  # nothing listens on :9
    assert proc.returncode == 0 and "network error" in proc.stderr, proc.stderr


def test_not_sent_without_confirmation(session) -> None:
    home, run_id = session
    with FakeMessagesAPI("ok") as api:
        proc = cli(home, _env(api), "advise", run_id, "--llm", stdin="y\n")  # not a terminal
    assert proc.returncode == 0 and api.requests == []
    assert "not sent" in proc.stderr and '"rule_findings"' in proc.stdout


def test_iter_advice_generator_for_the_app() -> None:
    from analyzers.advice.llm import LLMSettings, iter_advice
    from analyzers.advice.payload import build_request

    result: list = []
    with FakeMessagesAPI("ok") as api:
        settings = LLMSettings(model="m", timeout_s=5, max_retries=0, base_url=api.base_url)
        chunks = list(iter_advice(build_request({"rule_findings": []}, "m"), settings,
                                  key=FAKE_KEY, result=result))
    assert chunks == ANSWER_CHUNKS and result[0].stop_reason == "end_turn"
