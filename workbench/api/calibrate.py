"""Roofline ceilings measured on this machine (GEMM and copy micro-benchmarks in a supervised
torch child, ``python -m workloads.calibrate``), cached in the home per device + driver."""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.errors import WorkbenchError

_CODE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Calibration:
    measurement: dict[str, Any]  # what the child measured (and what it could not)
    ceilings: Any  # analyzers.ceilings.Ceilings
    spec: Any  # the spec sheet's Ceilings of the device, or None
    cache: Path  # where they were cached


@dataclass
class CalibrationFailed:
    status: str  # the supervisor's outcome
    returncode: int | None
    log_tail: str


def calibrate(home: Path, device: str = "auto", gemm_n: int | None = None,
              copy_mib: int | None = None, repeats: int | None = None,
              timeout_s: float = 900.0) -> Calibration | CalibrationFailed:
    from analyzers.ceilings import cache_put, ceilings_from_calibration, spec_ceilings
    from profilers.supervisor import run_supervised
    from workbench.api.pipeline.analysis import load_ceilings_cache, save_ceilings_cache

    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiperf-calibrate-") as tmp:
        out = Path(tmp) / "calibration.json"
        cmd = [sys.executable, "-m", "workloads.calibrate", "--out", str(out),
               "--device", device]
        for flag, value in (("--gemm-n", gemm_n), ("--copy-mib", copy_mib),
                            ("--repeats", repeats)):
            if value is not None:
                cmd += [flag, str(value)]
        log = calibration_log(home)
        outcome = run_supervised(cmd, log, timeout_s=timeout_s, cwd=_CODE_ROOT)
        if outcome.status != "exited" or outcome.returncode != 0 or not out.is_file():
            tail = _log_tail(log)
            if outcome.returncode == 2:
                raise WorkbenchError(f"calibrate: {tail or 'bad device'}", "try --device cpu")
            return CalibrationFailed(outcome.status, outcome.returncode, tail)
        measurement = json.loads(out.read_text())
    ceilings = ceilings_from_calibration(measurement)
    path = save_ceilings_cache(home, cache_put(load_ceilings_cache(home), ceilings))
    return Calibration(measurement, ceilings, spec_ceilings(ceilings.device_name), path)


def calibration_log(home: Path) -> Path:
    return home / "logs" / "calibrate.log"


def _log_tail(log: Path, lines: int = 1) -> str:
    try:
        text = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " / ".join(text[-lines:])
