"""Parent death under a wrapper: the workload is not the CLI's child but a grandchild (torchrun
ranks in their own sessions; the target of ncu or nsys). kill -9 of the CLI must still leave
no process of the run: the direct child dies by the parent-death signal, the workload by its
watchdog (workloads.watchdog: the CLI's pid and start time). torchrun runs on the CPU here;
ncu and nsys need a GPU (marked ``gpu``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.reliability.tools import ROOT, cli, kill_all, pids_with, wait_gone


def _kill_cli_mid_run(tmp_path: Path, args: list[str], processes: int,
                      extra_env: dict[str, str] | None = None) -> tuple[list[int], str]:
    """Start `run ARGS`, wait until ``processes`` processes of it exist and the workload is
    measuring, kill -9 the CLI; returns the survivors after 5 s and the session status."""
    marker = f"wrapper-{uuid.uuid4().hex}"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPERF_", "ANTHROPIC_"))}
    env.update({"AIPERF_TEST_MARKER": marker, "PYTHONPATH": str(ROOT), **(extra_env or {})})
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--home", str(home), "run",
                             *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        assert proc.stderr is not None
        for line in proc.stderr:  # the measure phase: every rank / the wrapped child is up
            if "measure" in line or time.monotonic() > deadline:
                break
        assert len(pids_with(marker)) >= processes, pids_with(marker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        left = wait_gone(marker, 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    kill_all(wait_gone(marker, 5.0))
    listing = cli(home, "sessions", "list").stdout.splitlines()
    return left, listing[1].split()[1] if len(listing) > 1 else "none"


@pytest.mark.slow
def test_kill_9_of_the_cli_under_torchrun_leaves_no_rank(tmp_path: Path) -> None:
    left, status = _kill_cli_mid_run(
        tmp_path, ["--workload", "dense", "--preset", "tiny", "--device", "cpu",
                   "--nproc-per-node", "2", "--repeat", "100000", "--warmup", "1",
                   "--no-telemetry", "--timeout", "300"],
        processes=3, extra_env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert left == [], f"{len(left)} processes of the run outlived the CLI"
    assert status == "interrupted"


@pytest.mark.gpu
@pytest.mark.parametrize("profiler", ["ncu", "nsys"])
def test_kill_9_of_the_cli_under_a_profiler_leaves_nothing(tmp_path: Path, profiler: str) -> None:
    left, status = _kill_cli_mid_run(
        tmp_path, ["--workload", "dense", "--preset", "tiny", "--device", "cuda", "--profiler",
                   profiler, "--repeat", "200", "--warmup", "1", "--timeout", "600"],
        processes=2)
    assert left == [], f"{len(left)} processes of the run outlived the CLI"
    assert status == "interrupted"
