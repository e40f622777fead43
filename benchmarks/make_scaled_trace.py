"""Write a large Kineto trace by replicating a real one with time and id offsets.

    python benchmarks/make_scaled_trace.py SRC.json OUT.json --size-mb 100 [--gzip]

Each replica shifts ``ts`` past the previous copy's span and offsets ``External id``,
``correlation`` and flow ids, so links stay one-to-one. Events are written one per line in
torch's layout (header fields, then ``"traceEvents": [ ... ]``, then ``traceName``). Prints the
number of replicas, events and kernel-duration total (us) for checking a parser against.
Big outputs belong in /tmp, never in the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import orjson


def _shift(ev: dict[str, Any], dt: float, did: int) -> dict[str, Any]:
    out = dict(ev)
    if isinstance(out.get("ts"), int | float) and out.get("ph") != "M":
        out["ts"] = round(out["ts"] + dt, 3)
    if "id" in out and isinstance(out["id"], int):
        out["id"] += did
    args = out.get("args")
    if isinstance(args, dict):
        args = dict(args)
        for key in ("External id", "correlation"):
            if isinstance(args.get(key), int):
                args[key] += did
        out["args"] = args
    return out


def make_scaled_trace(src: Path, out: Path, size_mb: float, use_gzip: bool = False) -> dict[str, Any]:
    doc = json.loads(src.read_text())
    events = doc.pop("traceEvents")
    trace_name = doc.pop("traceName", None)
    body = [e for e in events if e.get("ph") != "M"]
    meta_events = [e for e in events if e.get("ph") == "M"]
    ts = [e["ts"] + e.get("dur", 0) for e in body if isinstance(e.get("ts"), int | float)]
    t0 = min(e["ts"] for e in body if isinstance(e.get("ts"), int | float))
    span = max(ts) - t0 + 1000.0
    ids = [e.get("args", {}).get(k, 0) for e in body for k in ("External id", "correlation")]
    ids += [e["id"] for e in body if isinstance(e.get("id"), int)]
    did = max(i for i in ids if isinstance(i, int)) + 1
    one_copy = sum(len(orjson.dumps(e)) + 2 for e in body)
    replicas = max(1, int(size_mb * 1e6 / one_copy))
    opener = gzip.open if use_gzip else open
    n_events = 0
    kernel_us = 0.0
    with opener(out, "wb") as f:  # type: ignore[operator]
        head = orjson.dumps(doc, option=orjson.OPT_INDENT_2)[:-2]  # drop closing "\n}"
        f.write(head + b',\n  "traceEvents": [\n')
        first = True
        for e in meta_events:
            f.write((b"" if first else b",\n") + orjson.dumps(e))
            first = False
            n_events += 1
        for r in range(replicas):
            lines = []
            for e in body:
                shifted = _shift(e, r * span, r * did)
                if e.get("cat") == "kernel":
                    kernel_us += e["dur"]
                lines.append(orjson.dumps(shifted))
            n_events += len(lines)
            sep = b"" if first else b",\n"
            f.write(sep + b",\n".join(lines))
            first = False
        tail = b"\n  ]"
        if trace_name is not None:
            tail += b',\n  "traceName": ' + orjson.dumps(trace_name)
        f.write(tail + b"\n}\n")
    return {"replicas": replicas, "events": n_events, "kernel_us": kernel_us,
            "bytes": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size-mb", type=float, default=100.0)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    print(json.dumps(make_scaled_trace(args.src, args.out, args.size_mb, args.gzip)))


if __name__ == "__main__":
    main()
