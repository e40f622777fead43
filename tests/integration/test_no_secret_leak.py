"""The API key never lands on disk: with a fake key in the environment, real tiny CPU runs
under the torch profiler, LLM advice against a local fake API, Markdown and JSON exports —
then every file under the session home and the exports is searched for the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fake_messages_api import ANSWER_CHUNKS, FakeMessagesAPI

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-ant-api03-LEAKCHECK-6f1d2c9e8b7a-do-not-store"


@pytest.mark.slow  # two real runs in child processes: ~35 s on 2 cores
def test_fake_key_never_written(tmp_path: Path) -> None:
    home, exports = tmp_path / "home", tmp_path / "exports"
    exports.mkdir()
    with FakeMessagesAPI("ok") as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.update({"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": api.base_url,
                    "AIPERF_HOME": str(home), "AIPERF_LLM_RETRIES": "0", "AIPERF_LLM_TIMEOUT": "10"})

        def cli(*args: str) -> subprocess.CompletedProcess:
            proc = subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300, env=env)
            assert proc.returncode == 0, proc.stderr + proc.stdout
            assert FAKE_KEY not in proc.stdout + proc.stderr
            return proc

        ids = []
        for i, layers in enumerate(("L0", "L0,L1")):
            cli("run", "--preset", "tiny", "--profiler", "torch", "--layers", layers,
                "--repeat", "3", "--warmup", "1", "--quiet",
                "--export", str(exports / f"run{i}.md"), "--json", str(exports / f"run{i}.json"))
            ids.append(cli("sessions", "list").stdout.splitlines()[1].split()[0])
        for run_id in ids:
            out = cli("advise", run_id, "--llm", "--yes", "--json", str(exports / f"advise-{run_id}.json"))
            assert "".join(ANSWER_CHUNKS) in out.stdout
            cli("report", run_id, "--export", str(exports / f"report-{run_id}.md"),
                "--json", str(exports / f"report-{run_id}.json"))
        assert len(api.requests) == 2
        assert all(FAKE_KEY not in r["raw"] for r in api.requests)  # the body never holds it

    # the answer did land where it should: the record and the exports
    report = (exports / f"report-{ids[0]}.md").read_text()
    assert "## Advice" in report and "".join(ANSWER_CHUNKS) in report
    exported = json.loads((exports / f"report-{ids[1]}.json").read_text())
    assert exported["record"]["llm_advice"]["text"] == "".join(ANSWER_CHUNKS)

    needle = FAKE_KEY.encode()
    searched, hits = 0, []
    for root in (home, exports):
        for path in root.rglob("*"):
            if path.is_file():
                searched += 1
                if needle in path.read_bytes():
                    hits.append(str(path))
    assert searched >= 10, searched  # records, traces, db + WAL, caches, exports
    assert hits == []
