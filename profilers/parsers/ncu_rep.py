"""Nsight Compute ``.ncu-rep`` -> KernelTable + metrics, through NVIDIA's ``ncu_report`` module.

``ncu_report`` ships with Nsight Compute (``extras/python``), not on PyPI. We look for it in
``$NCU_PYTHON_PATH``, under ``/opt/nvidia/nsight-compute/*/extras/python``, and next to the
``ncu`` on PATH. Without it, the report cannot be read here: export it to CSV instead.
"""

from __future__ import annotations

import glob
import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from profilers.parsers._io import NCU_REP_MAGIC, head_bytes, require_file
from profilers.parsers._ncu_common import build_ncu_tables
from profilers.parsers.ncu_csv import NcuResult
from workloads.errors import WorkbenchError

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


def import_ncu_report() -> ModuleType | None:
    """The ncu_report module, or None when no Nsight Compute install provides one."""
    if "ncu_report" in sys.modules:
        return sys.modules["ncu_report"]
    try:
        return importlib.import_module("ncu_report")
    except ImportError:
        pass
    for d in ncu_python_dirs():
        sys.path.insert(0, str(d))
        try:
            return importlib.import_module("ncu_report")
        except Exception:  # noqa: BLE001 - a broken install is the same as none
            sys.path.remove(str(d))
    return None


def _metric_value(metric: Any) -> tuple[Any, str]:
    """A metric's value (float or str) and unit, via the documented IMetric API."""
    unit = ""
    try:
        unit = str(metric.unit())
    except Exception:  # noqa: BLE001 - optional in older versions
        unit = ""
    try:
        kind = metric.metric_type()
        string_kind = getattr(type(metric), "MetricType_STRING", None)
        if string_kind is not None and kind == string_kind:
            return str(metric.as_string()), unit
    except Exception:  # noqa: BLE001
        pass
    try:
        return float(metric.as_double()), unit
    except Exception:  # noqa: BLE001
        try:
            return str(metric.as_string()), unit
        except Exception:  # noqa: BLE001
            return None, unit


def read_actions(report: ModuleType, path: Path) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """One record per profiled kernel (action), in report order, as columns + units."""
    try:
        context = report.load_report(str(path))
    except Exception as exc:  # noqa: BLE001 - the module raises its own types
        raise WorkbenchError(f"{path}: ncu_report cannot load it ({exc})",
                             "the report may be truncated or from a newer Nsight Compute") from None
    records: list[dict[str, Any]] = []
    units: dict[str, str] = {}
    for r in range(context.num_ranges()):
        rng = context.range_by_idx(r)
        for a in range(rng.num_actions()):
            action = rng.action_by_idx(a)
            rec: dict[str, Any] = {"ID": len(records), "Kernel Name": str(action.name())}
            for name in action.metric_names():
                value, unit = _metric_value(action.metric_by_name(name))
                rec[str(name)] = value
                if unit:
                    units[str(name)] = unit
            records.append(rec)
    if not records:
        raise WorkbenchError(f"{path}: the report holds no profiled kernels",
                             "check ncu's --kernel-name / --launch-count filters")
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    columns = {n: [rec.get(n) for rec in records] for n in names}
    return columns, units


def load_ncu_rep(path: str | os.PathLike[str]) -> NcuResult:
    p = require_file(path, ".ncu-rep report")
    if not head_bytes(p, 4).startswith(NCU_REP_MAGIC):
        raise WorkbenchError(f"{p}: not an Nsight Compute report (bad magic bytes)")
    report = import_ncu_report()
    if report is None:
        raise WorkbenchError(_NOT_FOUND, _hint(p))
    columns, units = read_actions(report, p)
    kernels, metrics = build_ncu_tables(columns, units)
    return NcuResult(kernels, metrics, {"path": str(p), "size": os.path.getsize(p),
                                        "n_kernels": len(kernels)})
