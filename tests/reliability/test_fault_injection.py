"""The fault-injection pass (marker ``reliability``; `.ci/run` runs it with the rest):
seeded kills of the CLI and its child (SIGKILL, SIGTERM, SIGHUP, SIGINT, a double Ctrl-C),
concurrent writers, a full disk and hostile names — all through the real CLI (see
tests/reliability/faults.py). It prints its counts and writes them to the test's own folder — a
test run leaves the checkout as it was; `AIPERF_RESULTS_DIR=benchmarks/results python -m pytest
tests/reliability/test_fault_injection.py` writes the committed
benchmarks/results/reliability-cpu2.json. benchmarks/reliability.py runs a longer pass."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.reliability import faults

RESULTS_NAME = "reliability-cpu2.json"
CONFIG = {"seed": int(os.environ.get("AIPERF_FAULT_SEED", "17")), "stub_runs_per_worker": 20,
          "real_runs_per_worker": 1, "workers": 2, "writer_bursts": 1}


@pytest.mark.reliability
@pytest.mark.slow
def test_fault_injection(tmp_path: Path) -> None:
    started = time.monotonic()
    tally = faults.run_all(tmp_path, CONFIG["seed"], CONFIG["stub_runs_per_worker"],
                           CONFIG["real_runs_per_worker"], CONFIG["writer_bursts"],
                           CONFIG["workers"])
    results = Path(os.environ.get("AIPERF_RESULTS_DIR") or tmp_path) / RESULTS_NAME
    doc = faults.write_results(tally, results, CONFIG, time.monotonic() - started)
    print("\nfault injection:", json.dumps({k: v for k, v in doc.items() if k != "examples"},
                                           indent=1))
    assert tally.failures() == dict.fromkeys(tally.failures(), 0), doc["examples"]
    assert doc["acknowledged_sessions"] > 0 and sum(tally.kills.values()) >= 30
