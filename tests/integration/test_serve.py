"""`aiperf-workbench loadtest` end to end on the CPU: a real child run of the serve workload,
stored as a session, with the engine's parity against one-at-a-time greedy decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sessions.store import SessionStore

REPO = Path(__file__).resolve().parents[2]


def test_loadtest_cli_stores_a_session_with_percentiles_and_knee(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--home", str(tmp_path), "loadtest",
         "--device", "cpu", "--quiet", "--json", "--rates", "40,400", "--requests", "6",
         "--max-duration", "20", "--param", "output_max=6", "--param", "prompt_max=24"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"})  # tiny shapes; a busy 2-core CI box
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["status"] == "ok" and payload["parity"]["ok"]
    assert payload["parity"]["top1_agreement"] == 1.0
    points = payload["loadtest"]["rates"]
    assert [p["offered_rate_rps"] for p in points] == [40.0, 400.0]
    for point in points:
        assert point["requests"] == 6 and point["completed"] == 6
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            dist = point[key]
            assert dist["p50"] <= dist["p90"] <= dist["p99"], key
        assert point["ttft_ms"]["p50"] <= point["e2e_ms"]["p50"]
        assert point["output_tokens_per_s"] > 0 and point["goodput_rps"] is not None
        assert point["goodput_rps"] <= point["request_throughput_rps"]
    assert "reason" in payload["loadtest"]["knee"]
    record = SessionStore(tmp_path).get(payload["session"])
    assert record.spec.workload == "serve" and record.status == "ok"
    assert record.details["loadtest"]["rates"] == points


def test_loadtest_help_says_what_it_measures(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "loadtest", "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "A serving load test" in proc.stdout
    assert "seed 001" not in proc.stdout and "seed's" not in proc.stdout
