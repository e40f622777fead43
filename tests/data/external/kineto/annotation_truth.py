"""Truth for annotation regions of a Kineto trace, with the standard library only (json, gzip):
each kernel / memcpy / memset goes to the innermost user_annotation on the same (pid, tid) as
the cuda_runtime / cuda_driver call with its correlation id, open at that call's start
(latest start, then shortest, wins); GPU time summed per annotation name. Times are rounded to
integer ns from the trace's microseconds, as the parser does.

    python tests/data/external/kineto/annotation_truth.py TRACE.json.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import Counter
from pathlib import Path

GPU = ("kernel", "gpu_memcpy", "gpu_memset")


def truth(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        events = json.load(fh)["traceEvents"]
    ranges = [e for e in events if e.get("cat") == "user_annotation" and e.get("ph") == "X"]
    launch = {}
    for e in events:
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {}):
            launch.setdefault(e["args"]["correlation"], e)
    by_name: Counter[str] = Counter()
    total = attributed = 0
    for e in events:
        if e.get("cat") not in GPU:
            continue
        dur = round(e["dur"] * 1000)
        total += dur
        call = launch.get(e.get("args", {}).get("correlation"))
        if call is None:
            continue
        t, best = round(call["ts"] * 1000), None
        for r in ranges:
            if (r["pid"], r["tid"]) != (call["pid"], call["tid"]):
                continue
            s = round(r["ts"] * 1000)
            end = s + round(r["dur"] * 1000)
            if s <= t < end and (best is None or (s, -end) > (best[0], -best[1])):
                best = (s, end, r["name"])
        if best is not None:
            by_name[best[2]] += dur
            attributed += dur
    steps = sorted(r["name"] for r in ranges if r["name"].startswith("ProfilerStep#"))
    return {"gpu_total_ns": total, "attributed_ns": attributed, "ranges": len(ranges),
            "profiler_steps": steps, "self_ns_by_name": dict(by_name.most_common())}


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps({Path(arg).name: truth(Path(arg))}, indent=1))
