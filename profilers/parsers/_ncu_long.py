"""ncu's default CSV layout (``ncu --csv`` without ``--page raw``) -> one wide row per launch.

That layout has one row per metric per launch: identity columns ("ID", "Process ID", "Kernel
Name", "Context", "Stream", "Block Size", "Grid Size", "Device", ...), then "Section Name",
"Metric Name", "Metric Unit", "Metric Value" (newer versions add rule columns: rows with a
rule and no metric carry no value). Each value has its own unit — ncu picks a readable one per
value, so one launch's Duration is in "usecond" and the next in "msecond" — so values are
converted to base units row by row (ns, bytes, 1/s), and the pivot hands over base units.

Section display names are mapped to the raw metric names the rest of the parser reads
("Duration" -> gpu__time_duration.sum, "Registers Per Thread" ->
launch__registers_per_thread, a memory throughput in bytes/s -> dram__bytes.sum.per_second,
...); with ``--metrics`` the rows already name raw metrics. Other section metrics keep
"Section: Metric" names so two sections' "Memory Throughput" stay apart.
"""

from __future__ import annotations

import re
from typing import Any

from profilers.parsers._ncu_common import parse_number, unit_factor

METRIC_COLUMNS = ("Section Name", "Metric Name", "Metric Unit", "Metric Value")
IDENTITY = ("ID", "Process ID", "Process Name", "Host Name", "Kernel Name", "Context", "Stream",
            "Block Size", "Grid Size", "Device", "CC")

# (section display name) -> raw metric name; checked after the unit tells rates from shares.
_DISPLAY_TO_RAW = {
    "Duration": "gpu__time_duration.sum",
    "Registers Per Thread": "launch__registers_per_thread",
    "Static Shared Memory Per Block": "launch__shared_mem_per_block_static",
    "Dynamic Shared Memory Per Block": "launch__shared_mem_per_block_dynamic",
    "Driver Shared Memory Per Block": "launch__shared_mem_per_block_driver",
    "Shared Memory Configuration Size": "launch__shared_mem_config_size",
    "Block Size": "launch__block_size",
    "Grid Size": "launch__grid_size",
    "Threads": "launch__thread_count",
    "Waves Per SM": "launch__waves_per_multiprocessor",
    "SM Frequency": "smsp__cycles_elapsed.avg.per_second",
    "DRAM Frequency": "dram__cycles_elapsed.avg.per_second",
    "Elapsed Cycles": "gpc__cycles_elapsed.max",
    "Achieved Occupancy": "sm__warps_active.avg.pct_of_peak_sustained_active",
    "Theoretical Occupancy": "sm__maximum_warps_per_active_cycle_pct",
    "Compute (SM) Throughput": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "SM [%]": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "DRAM Throughput": "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed",
}
_RATE = re.compile(r"byte/(n|u|m)?s(econd)?$", re.IGNORECASE)
# European locales: "27.595.520" (dots group thousands) or "1.234,5" (a comma after the dots).
_DOT_GROUPS = re.compile(r"^-?\d{1,3}(\.\d{3}){2,}(,\d+)?$|^-?\d{1,3}(\.\d{3})+,\d+$")


def is_long_layout(header: list[str]) -> bool:
    return "Metric Name" in header and "Metric Value" in header and "ID" in header


def decimal_comma(values: list[str]) -> bool:
    """Whether the numbers use ',' for decimals and '.' for thousands (ncu follows the
    locale): only when some value says so unambiguously ("27.595.520", "1.234,5")."""
    return any(_DOT_GROUPS.match(v) for v in values if v and "." in v)


def number(text: str, comma_decimals: bool) -> float:
    if comma_decimals and isinstance(text, str):
        text = text.replace(".", "").replace(",", ".")
    return parse_number(text)


def _metric_key(section: str, name: str, unit: str) -> str:
    if "__" in name:  # a raw metric (--metrics): already its own name
        return name
    if name == "Memory Throughput" and _RATE.search(unit):
        return "dram__bytes.sum.per_second"
    raw = _DISPLAY_TO_RAW.get(name)
    if raw is not None and not (name in ("Block Size", "Grid Size") and unit.startswith("(")):
        return raw
    return f"{section}: {name}" if section else name


def pivot(header: list[str], rows: list[list[str]]
          ) -> tuple[dict[str, list[Any]], dict[str, str], list[str]]:
    """(columns: one value per launch, base units per column, notes)."""
    at = {h: i for i, h in enumerate(header)}
    i_sec, i_name, i_unit, i_val = (at.get(c) for c in METRIC_COLUMNS)
    assert i_name is not None and i_val is not None
    ident = [c for c in IDENTITY if c in at]
    key_cols = [at[c] for c in ("ID", "Process ID", "Kernel Name") if c in at]
    comma = decimal_comma([r[i_val] for r in rows if len(r) > i_val])

    def cell(row: list[str], i: int | None) -> str:
        return row[i].strip() if i is not None and i < len(row) else ""

    launches: dict[tuple[str, ...], int] = {}
    values: list[dict[str, Any]] = []
    units: dict[str, str] = {}
    for row in rows:
        name = cell(row, i_name)
        if not name:  # a rule's row: no metric
            continue
        key = tuple(cell(row, i) for i in key_cols)
        slot = launches.get(key)
        if slot is None:
            slot = launches[key] = len(values)
            values.append({c: cell(row, at[c]) for c in ident})
        unit = cell(row, i_unit)
        metric = _metric_key(cell(row, i_sec), name, unit)
        if metric in values[slot]:
            continue  # the same metric in two sections: the first one read
        raw = cell(row, i_val)
        value = number(raw, comma)
        if value != value:  # not a number: kept as the text it is
            values[slot][metric] = raw
            continue
        factor, base = unit_factor(unit)
        values[slot][metric] = value * factor
        units.setdefault(metric, base)
    names = list(dict.fromkeys(k for launch in values for k in launch))
    columns = {c: [launch.get(c) for launch in values] for c in names}
    notes = []
    if comma:
        notes.append("numbers read with ',' as the decimal mark and '.' grouping thousands "
                     "(the locale ncu ran under)")
    return columns, units, notes
