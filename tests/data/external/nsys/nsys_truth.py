"""Truth for the nsys SQLite exports beside this file, computed with the standard library only
(sqlite3, bisect): independent of profilers.parsers and analyzers. Writes the "truth" of each
``<file>.source.json`` sidecar.

    python tests/data/external/nsys/nsys_truth.py FILE.sqlite [FILE.sqlite ...]

- activities / totals: count and sum(end - start) of the kernel, memcpy and memset tables,
  per device too;
- gpus: TARGET_INFO_GPU names and SM counts;
- regions: for each kernel, memcpy and memset, the CUDA runtime call of its process with the
  same correlationId; then the innermost NVTX push/pop or start/end range (eventType 59/60)
  open on that call's thread at its start, found by a linear scan; GPU time summed per range
  name (torch emit_nvtx's ", op_id = N, ..." cut off);
- overlap per device: the union of NCCL kernels' [start, end) and the union of all other
  activity, and their intersection, by a sorted sweep in pure Python.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

ACTIVITY = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET")
SUFFIX = re.compile(r",\s*(?:seq|op_id|sizes|input_op_ids|stream|ids)\s*=.*$", re.S)


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _intersection(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def truth(path: Path) -> dict:
    con = sqlite3.connect(path)
    tables = _tables(con)
    strings = dict(con.execute("SELECT id, value FROM StringIds"))
    rows = []  # (start, end, device, corr, pid, name, table)
    for t in ACTIVITY:
        if t not in tables:
            continue
        name_col = "demangledName" if t == ACTIVITY[0] else "NULL"
        for s, e, dev, corr, gpid, nid in con.execute(
                f'SELECT start, "end", deviceId, correlationId, globalPid, {name_col} FROM {t}'):
            rows.append((s, e, dev, corr, gpid >> 24 if gpid else None,
                         strings.get(nid, "") if nid is not None else t, t))
    out: dict = {
        "activities": len(rows),
        "total_ns": sum(e - s for s, e, *_ in rows),
        "by_table": {t.rsplit("_", 1)[-1].lower(): {
            "count": sum(1 for r in rows if r[6] == t),
            "total_ns": sum(r[1] - r[0] for r in rows if r[6] == t)} for t in ACTIVITY if t in tables},
        "by_device": {str(d): sum(r[1] - r[0] for r in rows if r[2] == d)
                      for d in sorted({r[2] for r in rows})},
    }
    if "TARGET_INFO_GPU" in tables:
        out["gpus"] = [{"id": i, "name": n, "sm_count": sm} for i, n, sm in
                       con.execute("SELECT id, name, smCount FROM TARGET_INFO_GPU ORDER BY id")]
    # overlap per device: NCCL vs everything else
    overlap = {}
    for d in sorted({r[2] for r in rows}):
        comm = _union([(r[0], r[1]) for r in rows if r[2] == d and "nccl" in r[5].lower()])
        other = _union([(r[0], r[1]) for r in rows if r[2] == d and "nccl" not in r[5].lower()])
        comm_ns = sum(e - s for s, e in comm)
        overlap[str(d)] = {"comm_ns": comm_ns, "compute_ns": sum(e - s for s, e in other),
                           "overlap_ns": _intersection(comm, other)}
    out["overlap_by_device"] = overlap
    if "NVTX_EVENTS" in tables and "CUPTI_ACTIVITY_KIND_RUNTIME" in tables:
        ranges = defaultdict(list)
        for s, e, text, tid, text_id, etype in con.execute(
                'SELECT start, "end", text, globalTid, textId, eventType FROM NVTX_EVENTS'):
            if e is None or etype not in (59, 60) or e < s:
                continue
            name = text if text is not None else strings.get(text_id, "<unnamed>")
            ranges[tid].append((s, e, SUFFIX.sub("", name).strip() or name))
        for tid in ranges:
            ranges[tid].sort(key=lambda r: (r[0], -r[1]))
        launch = {}
        for s, corr, tid in con.execute(
                "SELECT start, correlationId, globalTid FROM CUPTI_ACTIVITY_KIND_RUNTIME"):
            launch.setdefault((tid >> 24, corr), (s, tid))
        self_ns: dict[str, int] = defaultdict(int)
        attributed = 0
        for s, e, _, corr, pid, _, _ in rows:
            hit = launch.get((pid, corr))
            if hit is None:
                continue
            t, tid = hit
            owner = None
            for rs, re_, name in ranges.get(tid, ()):
                if rs > t:
                    break
                if rs <= t < re_:
                    owner = name
            if owner is not None:
                self_ns[owner] += e - s
                attributed += e - s
        out["regions"] = {"ranges": sum(len(v) for v in ranges.values()),
                          "attributed_ns": attributed,
                          "self_ns_by_name": dict(sorted(self_ns.items(), key=lambda x: -x[1]))}
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps({Path(arg).name: truth(Path(arg))}, indent=1))
