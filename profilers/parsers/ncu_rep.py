"""Nsight Compute ``.ncu-rep`` -> KernelTable + metrics, through NVIDIA's ``ncu_report`` module.

``ncu_report`` ships with Nsight Compute (``extras/python``), not on PyPI. We look for it in
``$NCU_PYTHON_PATH``, under ``/opt/nvidia/nsight-compute/*/extras/python``, and next to the
``ncu`` on PATH. Without it, the report cannot be read here: export it to CSV instead.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from profilers.base import find_tool
from profilers.parsers._io import NCU_REP_MAGIC, head_bytes, require_file
from profilers.parsers._ncu_common import build_ncu_tables
from profilers.parsers.ncu_csv import NcuResult, parse_ncu_csv_text
from profilers.supervisor import child_environment
from workloads.errors import WorkbenchError

_READER = Path(__file__).with_name("_ncu_rep_reader.py")
_NOT_FOUND = "cannot read .ncu-rep: NVIDIA's ncu_report module was not found"


def _hint(path: Path | str) -> str:
    stem = str(path)[: -len(".ncu-rep")] if str(path).endswith(".ncu-rep") else str(path)
    return ("install Nsight Compute or export to CSV: "
            f"ncu --import {path} --csv --page raw > {stem}.csv")


def ncu_python_dirs() -> list[Path]:
    """Directories that may hold ncu_report.py, most specific first."""
    dirs: list[Path] = []
    env = os.environ.get("NCU_PYTHON_PATH")
    if env:
        dirs += [Path(d) for d in env.split(os.pathsep) if d]
    dirs += [Path(d) for d in sorted(glob.glob("/opt/nvidia/nsight-compute/*/extras/python"),
                                     reverse=True)]
    ncu = shutil.which("ncu")
    if ncu:
        real = Path(ncu).resolve().parent
        dirs += [real / "extras" / "python", real.parent / "extras" / "python"]
    return [d for d in dirs if (d / "ncu_report.py").is_file() or any(d.glob("ncu_report*"))]


def ncu_report_available() -> bool:
    """Whether an ncu_report module can be found (importable or under an Nsight install)."""
    return importlib.util.find_spec("ncu_report") is not None or bool(ncu_python_dirs())


def _read_with_module(p: Path) -> tuple[dict[str, Any] | None, str]:
    """(columns + units, "") from the reader child, or (None, why it failed)."""
    dirs = [str(d) for d in ncu_python_dirs()]
    try:
        proc = subprocess.run([sys.executable, str(_READER), str(p), *dirs],
                              capture_output=True, timeout=600, env=child_environment(None))
    except subprocess.TimeoutExpired:
        return None, "ncu_report took over 10 minutes"
    if proc.returncode != 0:
        sig = -proc.returncode if proc.returncode < 0 else None
        return None, (f"ncu_report crashed (signal {sig})" if sig else
                      f"ncu_report reader exited {proc.returncode}: "
                      f"{proc.stderr.decode(errors='replace').strip()[-200:]}")
    try:
        payload = json.loads(proc.stdout)
    except ValueError:
        return None, "ncu_report reader wrote no JSON"
    if "error" in payload:
        return None, str(payload["error"])
    return payload, ""


def _read_with_ncu_cli(p: Path) -> tuple[NcuResult | None, str]:
    """The same report through ``ncu --import --csv --page raw`` when ncu is installed."""
    ncu = find_tool("ncu")
    if ncu is None:
        return None, "ncu is not on PATH"
    try:
        proc = subprocess.run([ncu, "--import", str(p), "--csv", "--page", "raw"],
                              capture_output=True, timeout=600, env=child_environment(None))
    except subprocess.TimeoutExpired:
        return None, "ncu --import took over 10 minutes"
    if proc.returncode != 0:
        return None, (f"ncu --import failed: "
                      f"{proc.stderr.decode(errors='replace').strip()[:200]}")
    return parse_ncu_csv_text(proc.stdout.decode("utf-8", errors="replace")), ""


def load_ncu_rep(path: str | os.PathLike[str]) -> NcuResult:
    """Read a .ncu-rep with NVIDIA's ncu_report (in a child process), else through the ncu
    command line's CSV export; a one-line WorkbenchError when neither can."""
    p = require_file(path, ".ncu-rep report")
    if not head_bytes(p, 4).startswith(NCU_REP_MAGIC):
        raise WorkbenchError(f"{p}: not an Nsight Compute report (bad magic bytes)")
    reasons: list[str] = []
    if ncu_report_available():
        payload, why = _read_with_module(p)
        if payload is not None:
            if not payload["columns"]:
                raise WorkbenchError(f"{p}: the report holds no profiled kernels",
                                     "check ncu's --kernel-name / --launch-count filters")
            kernels, metrics = build_ncu_tables(payload["columns"], payload["units"])
            return NcuResult(kernels, metrics, {"path": str(p), "size": os.path.getsize(p),
                                                "n_kernels": len(kernels),
                                                "reader": "ncu_report"})
        reasons.append(why)
    result, why = _read_with_ncu_cli(p)
    if result is not None:
        result.meta.update({"path": str(p), "size": os.path.getsize(p),
                            "reader": "ncu --import --csv"})
        return result
    if not reasons:
        raise WorkbenchError(_NOT_FOUND, _hint(p))
    raise WorkbenchError(f"{p}: cannot read the report: {reasons[0]}; {why}", _hint(p))
