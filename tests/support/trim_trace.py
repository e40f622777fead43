"""Cut one profiled step out of a torch-profiler trace, for a small test fixture.

    python -m tests.support.trim_trace IN.json.gz OUT.json.gz [STEP] [--kernels-only]

Keeps the trace's header (device properties, base time) and, of its events, the kernels /
memcpys / memsets inside the GPU range of step STEP (default 1: the second "aiperf:step"), and
the CPU ops, runtime calls and annotations inside that step's CPU range. Flow arrows ("ac2g")
and the CPU ops' strides are dropped (nothing reads them); the shapes the analysis reads
("Input Dims", "Input type", "Concrete Inputs") stay. Times and names are untouched.
``--kernels-only`` keeps no CPU events but the step annotation (for inventory-only fixtures of
big eager traces, whose CPU ops are most of their size).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation"}
CPU_CATS = {"cpu_op", "cuda_runtime", "cuda_driver", "user_annotation"}
DROP_ARGS = {"Input Strides", "Ev Idx", "Record function id"}


def _window(events: list[dict[str, Any]], cat: str, step: int) -> tuple[float, float]:
    ranges = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                    if e.get("cat") == cat and e.get("name") == "aiperf:step")
    return ranges[step]


def trim(source: Path, target: Path, step: int = 1, kernels_only: bool = False
         ) -> dict[str, int]:
    trace = json.loads(gzip.open(source).read())
    events = trace["traceEvents"]
    gpu_lo, gpu_hi = _window(events, "gpu_user_annotation", step)
    cpu_lo, cpu_hi = _window(events, "user_annotation", step)
    kept: list[dict[str, Any]] = []
    for event in events:
        cat, ts = event.get("cat"), event.get("ts")
        if event.get("ph") == "M":
            kept.append(event)  # process / thread names
        elif cat in GPU_CATS and ts is not None and gpu_lo <= ts < gpu_hi:
            kept.append(event)
        elif cat in CPU_CATS and ts is not None and cpu_lo <= ts < cpu_hi \
                and (not kernels_only or cat == "user_annotation"):
            if cat == "cpu_op":
                event = {**event, "args": {k: v for k, v in event.get("args", {}).items()
                                           if k not in DROP_ARGS}}
            kept.append(event)
    trace["traceEvents"] = kept
    with gzip.open(target, "wt", compresslevel=9) as out:
        json.dump(trace, out, separators=(",", ":"))
    return {"events_in": len(events), "events_out": len(kept)}


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    src, dst, *rest = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(trim(Path(src), Path(dst), int(rest[0]) if rest else 1, "--kernels-only" in flags))
