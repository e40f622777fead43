"""Build the ~120 MB nsys SQLite benchmark input from a small real export.

    python benchmarks/nsys_bench_input.py SRC.sqlite DST.sqlite [--copies 50]

No public nsys export of ~120 MB exists (nsys-ai's own 120 MB example lives on Hugging Face
and is not fetched here), so the input is a real one replicated in time: every activity row
(kernels, memcpy, memset, CUDA runtime calls, synchronizations, NVTX ranges) of SRC is copied
``copies`` times, copy k shifted by k x (SRC's span + 1 ms) in its start/end columns and by
k x (SRC's largest correlation id + 1) in its correlationId column, so kernels still meet
their launching runtime call and copies never overlap. Every other table (StringIds, the
TARGET_INFO_* and META_DATA_* tables, enums) is kept as it is. The totals of DST are exactly
``copies`` x SRC's (checked at the end).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

ACTIVITY_TABLES = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                   "CUPTI_ACTIVITY_KIND_MEMSET", "CUPTI_ACTIVITY_KIND_RUNTIME",
                   "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION", "NVTX_EVENTS")
GAP_NS = 1_000_000


def _tables(con: sqlite3.Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def _span(con: sqlite3.Connection, tables: list[str]) -> tuple[int, int, int]:
    lo, hi, corr = None, None, 0
    for t in tables:
        a, b = con.execute(f'SELECT min(start), max(coalesce("end", start)) FROM "{t}"').fetchone()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        cols = {r[1] for r in con.execute(f'PRAGMA table_info("{t}")')}
        if "correlationId" in cols:
            corr = max(corr, con.execute(f'SELECT coalesce(max(correlationId), 0) FROM "{t}"')
                       .fetchone()[0])
    if lo is None or hi is None:
        raise SystemExit("source holds no activity rows")
    return lo, hi, corr


def replicate(src: Path, dst: Path, copies: int) -> dict[str, int]:
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst)
    tables = [t for t in ACTIVITY_TABLES if t in _tables(con)]
    lo, hi, max_corr = _span(con, tables)
    shift, corr_shift = hi - lo + GAP_NS, max_corr + 1
    counts = {}
    for t in tables:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')]
        n, last = con.execute(f'SELECT count(*), max(rowid) FROM "{t}"').fetchone()
        exprs = []
        for c in cols:
            if c in ("start", "end"):
                exprs.append(f'"{c}" + :k * {shift}')
            elif c == "correlationId":
                exprs.append(f'"{c}" + :k * {corr_shift}')
            else:
                exprs.append(f'"{c}"')
        names = ", ".join(f'"{c}"' for c in cols)
        sql = (f'INSERT INTO "{t}" ({names}) '
               f'SELECT {", ".join(exprs)} FROM "{t}" WHERE rowid <= {last or 0}')
        for k in range(1, copies):
            con.execute(sql, {"k": k})
        counts[t] = n * copies
    con.commit()
    con.execute("VACUUM")
    con.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--copies", type=int, default=50)
    args = ap.parse_args()
    counts = replicate(args.src, args.dst, args.copies)
    con = sqlite3.connect(args.dst)
    for t, want in counts.items():
        got = con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        assert got == want, (t, got, want)
    print(f"{args.dst}: {args.dst.stat().st_size / 1e6:.1f} MB, "
          + ", ".join(f"{t.split('_')[-1].lower()} {n:,}" for t, n in counts.items()))


if __name__ == "__main__":
    main()
