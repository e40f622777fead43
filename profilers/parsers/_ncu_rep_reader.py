"""Standalone reader run as a child process by ``ncu_rep.load_ncu_rep``:

    python _ncu_rep_reader.py REPORT [DIR ...]

Imports NVIDIA's ``ncu_report`` (from DIR... or sys.path), reads every profiled kernel
(action) of REPORT and writes one JSON object to stdout: {"columns": {name: [values]},
"units": {name: unit}} or {"error": "..."}. It imports nothing of this package and leaves with
``os._exit`` once the JSON is flushed: ncu_report's native objects have crashed the
interpreter (SIGSEGV) on the H200 box, which in a child costs one fallback, not the caller.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def metric_value(metric: Any) -> tuple[Any, str]:
    """A metric's value (float or str) and unit, via the documented IMetric API."""
    try:
        unit = str(metric.unit())
    except Exception:  # noqa: BLE001 - optional in older versions
        unit = ""
    try:
        # IMetric.kind() is the value kind (STRING, FLOAT, DOUBLE, UINT64, ...); metric_type()
        # is COUNTER/RATIO/THROUGHPUT/OTHER and says nothing about strings. as_double() of a
        # string metric returns 0.0 instead of failing: the H200 run read the device name
        # (device__attribute_display_name) as "0.0" that way.
        imetric = getattr(sys.modules.get("ncu_report"), "IMetric", type(metric))
        string_kind = getattr(imetric, "ValueKind_STRING", None)
        if string_kind is not None and metric.kind() == string_kind:
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


def read(path: str) -> dict[str, Any]:
    import ncu_report

    try:
        context = ncu_report.load_report(path)
    except Exception as exc:  # noqa: BLE001 - the module raises its own types
        return {"error": f"ncu_report cannot load it ({exc})"}
    records: list[dict[str, Any]] = []
    units: dict[str, str] = {}
    for r in range(context.num_ranges()):
        rng = context.range_by_idx(r)
        for a in range(rng.num_actions()):
            action = rng.action_by_idx(a)
            rec: dict[str, Any] = {"ID": len(records), "Kernel Name": str(action.name())}
            for name in action.metric_names():
                value, unit = metric_value(action.metric_by_name(name))
                rec[str(name)] = value
                if unit:
                    units[str(name)] = unit
            records.append(rec)
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    return {"columns": {n: [rec.get(n) for rec in records] for n in names}, "units": units}


def main() -> None:
    path, dirs = sys.argv[1], sys.argv[2:]
    sys.path[:0] = dirs
    try:
        payload = read(path)
    except ImportError as exc:
        payload = {"error": f"ncu_report did not import ({exc})"}
    sys.stdout.write(json.dumps(payload))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
