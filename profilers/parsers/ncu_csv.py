"""Nsight Compute CSV -> KernelTable + per-kernel metrics frame, in both of ncu's layouts.

The file is what ncu prints: maybe ``==PROF==`` / ``==WARNING==`` / ``==ERROR==`` lines, then
a header row ("ID","Process ID",...) and either
- ``--page raw``: a units row and one wide row per profiled kernel launch, or
- the default (``ncu --csv``, also with ``--metrics`` or ``--section``): one row per metric
  per launch, with "Metric Name", "Metric Unit", "Metric Value" columns, pivoted per launch
  ID in ``_ncu_long`` (units converted value by value).
Numbers may carry thousands separators ("16,896") and "n/a". See ``_ncu_common`` for units
and the derived FLOP/s and DRAM bytes/s. Without a kernel duration (no
gpu__time_duration.sum / Duration metric) the durations are missing — never 0 — and the
result's ``meta["notes"]`` says so; likewise for missing kernel names.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from profilers.parsers import _ncu_long
from profilers.parsers._io import input_limits, read_text, require_file, too_many_events
from profilers.parsers._ncu_common import build_ncu_tables
from workloads.errors import WorkbenchError

_KNOWN_FAILURES = (
    ("ERR_NVGPUCTRPERM", "ncu may not read the GPU performance counters",
     "run as root, or allow profiling for all users: add 'options nvidia "
     "NVreg_RestrictProfilingToAdminUsers=0' to /etc/modprobe.d and reboot (or reload the driver)"),
    ("No kernels were profiled", "ncu profiled no kernels",
     "check --kernel-name / --launch-skip / --launch-count filters and that the program "
     "launches CUDA kernels"),
    ("Failed to connect to process", "ncu could not attach to the program",
     "run the target under ncu directly, or use --target-processes all"),
)
_PROF_PREFIXES = ("==PROF==", "==WARNING==", "==ERROR==", "==ERR==", "==INFO==")


@dataclass
class NcuResult:
    kernels: pd.DataFrame
    metrics: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _split_header(text: str, path: Path) -> tuple[list[str], str]:
    """Tool messages before the table, and the table's text from its header row on."""
    lines = text.splitlines(keepends=True)
    messages: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.lstrip("\ufeff").strip()
        if stripped.startswith(_PROF_PREFIXES) or not stripped:
            messages.append(stripped)
            continue
        if stripped.startswith('"ID"') or stripped.startswith("ID,"):
            return messages, "".join(lines[i:])
        messages.append(stripped)
    _raise_known(messages, path)
    raise WorkbenchError(
        f"{path}: no ncu CSV table (no header row starting with \"ID\")",
        "export with: ncu --csv --page raw ... > out.csv (ncu --csv's default layout reads too)",
    )


def _raise_known(messages: list[str], path: Path) -> None:
    blob = "\n".join(messages)
    for needle, what, hint in _KNOWN_FAILURES:
        if needle in blob:
            raise WorkbenchError(f"{path}: {what} ({needle})", hint)


def parse_ncu_csv_text(text: str, path: Path | str = "<text>") -> NcuResult:
    path = Path(path)
    messages, table_text = _split_header(text, path)
    try:
        rows = list(csv.reader(io.StringIO(table_text)))
    except csv.Error as exc:
        raise WorkbenchError(f"{path}: malformed ncu CSV ({exc})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    # ncu may print ==PROF== lines in between (e.g. when a kernel fails): keep only table rows.
    messages += [r[0] for r in rows if r[0].startswith(_PROF_PREFIXES)]
    rows = [r for r in rows if not r[0].startswith(_PROF_PREFIXES)]
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    max_rows = input_limits().max_events
    if max_rows is not None and len(body) > max_rows:
        raise too_many_events(path, "ncu CSV", max_rows)
    long_layout = _ncu_long.is_long_layout(header)
    units: dict[str, str] = {}
    if body and not long_layout and _is_units_row(body[0], header):
        units = {h: u.strip() for h, u in zip(header, body[0], strict=False)}
        body = body[1:]
    if not body:
        _raise_known(messages, path)
        raise WorkbenchError(f"{path}: ncu CSV has a header but no kernel rows",
                             "ncu profiled no kernels; check its filters and messages")
    width = len(header)
    ragged = sum(1 for r in body if len(r) != width)
    notes: list[str] = []
    if long_layout:
        columns, units, notes = _ncu_long.pivot(header, body)
    else:
        columns = _wide_columns(header, body, units)
    kernels, metrics = build_ncu_tables(columns, units)
    notes += _missing_notes(columns, kernels)
    meta = {"path": str(path), "messages": [m for m in messages if m], "ragged_rows": ragged,
            "n_kernels": len(kernels), "layout": "metric rows" if long_layout else "raw",
            "notes": notes}
    if path.exists():
        meta["size"] = os.path.getsize(path)
    return NcuResult(kernels, metrics, meta)


def _wide_columns(header: list[str], body: list[list[str]], units: dict[str, str]
                  ) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        key = name if name not in seen else f"{name}.{seen[name]}"  # duplicate headers stay apart
        seen[name] = seen.get(name, 0) + 1
        columns[key] = [r[j] if j < len(r) else None for r in body]
        if key != name and name in units:
            units[key] = units[name]
    return columns


def _missing_notes(columns: dict[str, list[Any]], kernels: pd.DataFrame) -> list[str]:
    notes = []
    if "gpu__time_duration.sum" not in columns:
        notes.append("the ncu CSV holds no kernel duration (gpu__time_duration.sum, or the "
                     "Duration of the SpeedOfLight section): GPU time is unknown, not 0")
    elif len(kernels) and kernels["dur_ns"].isna().any():
        n = int(kernels["dur_ns"].isna().sum())
        notes.append(f"{n:,} of {len(kernels):,} launches have no readable duration: "
                     "left out of the totals")
    if "Kernel Name" not in columns:
        notes.append("the ncu CSV has no \"Kernel Name\" column: launches are <unnamed>")
    return notes


def _is_units_row(row: list[str], header: list[str]) -> bool:
    """The units row has an empty ID cell and unit words; a data row has a numeric ID."""
    first = row[0].strip() if row else ""
    if first and first.replace(",", "").isdigit():
        return False
    return first == "" or "ID" not in header[:1]


def load_ncu_csv(path: str | os.PathLike[str]) -> NcuResult:
    p = require_file(path, "ncu CSV")
    return parse_ncu_csv_text(read_text(p, "ncu CSV"), p)
