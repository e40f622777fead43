"""nsys_sqlite's reads — its checking SQL expressions — evaluated in numpy on the columns
``nsys_pages`` takes from the file, with the same results value for value: an integer out of
its range is missing (``MISSING``), a missing column is missing, packed fields pack the same
way. Each function names the SQL builder it mirrors; the tests run both paths on every
fixture and on hostile files and compare the frames.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from profilers.parsers._sqlite_columns import MISSING, TS_MASK
from profilers.parsers.nsys_pages import PageFile, PagesUnusable, RawInts, RawText, read_table

# Shared with nsys_sqlite's SQL (it imports them from here). The correlation id: process id
# (bits 24-47 of nsys's globalPid / globalTid) * 2**33 + the CUPTI id.
CORR_MASK = (1 << 33) - 1
PID_MASK = (1 << 24) - 1
# NVTX event types that are ranges (ENUM_NSYS_EVENT_TYPE): push/pop and start/end.
NVTX_RANGE_TYPES = (59, 60)

_KERNEL_COLUMNS = ("demangledName", "shortName", "registersPerThread", "staticSharedMemory",
                   "dynamicSharedMemory", "gridX", "gridY", "gridZ", "blockX", "blockY",
                   "blockZ")
_ACTIVITY_COLUMNS = ("start", "end", "deviceId", "streamId", "correlationId", "globalPid")


def _in_range(col: RawInts | None, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray] | None:
    if col is None:
        return None
    return col.values, ~col.null & (col.values >= lo) & (col.values <= hi)


def checked(col: RawInts | None, n: int, mask: int = TS_MASK) -> np.ndarray:
    """_sqlite_columns.checked: an integer in [0, mask], else MISSING."""
    got = _in_range(col, 0, mask)
    return np.full(n, MISSING, dtype=np.int64) if got is None else np.where(got[1], got[0],
                                                                             MISSING)


def checked_signed(col: RawInts | None, n: int) -> np.ndarray:
    """_sqlite_columns.checked_signed: an integer in [-2**62, 2**62], else MISSING."""
    got = _in_range(col, -(TS_MASK + 1), TS_MASK + 1)
    return np.full(n, MISSING, dtype=np.int64) if got is None else np.where(got[1], got[0],
                                                                             MISSING)


def part(col: RawInts | None, n: int, bits: int) -> np.ndarray:
    """_sqlite_columns.part: the column + 1 when in [0, 2**bits - 1), else 0."""
    got = _in_range(col, 0, (1 << bits) - 2)
    return np.zeros(n, dtype=np.int64) if got is None else np.where(got[1], got[0] + 1, 0)


def _dur(raw: dict[str, RawInts], n: int) -> np.ndarray:
    """nsys_sqlite._dur_expr: end - start where both are valid and end >= start."""
    if "start" not in raw or "end" not in raw:
        return np.full(n, MISSING, dtype=np.int64)
    s, e = checked_signed(raw["start"], n), checked_signed(raw["end"], n)
    ok = (s != MISSING) & (e != MISSING) & (e >= s)
    return np.where(ok, e - s, MISSING)


def _dims(raw: dict[str, RawInts], n: int, prefix: str, x_bits: int) -> np.ndarray:
    """nsys_sqlite._dims_expr: x * 2**32 + y * 2**16 + z, all three in range."""
    if any(f"{prefix}{a}" not in raw for a in "XYZ"):
        return np.full(n, MISSING, dtype=np.int64)
    cols = [raw[f"{prefix}{a}"] for a in "XYZ"]
    ok = np.ones(n, dtype=bool)
    for c, bits in zip(cols, (x_bits, 16, 16), strict=True):
        ok &= ~c.null & (c.values >= 0) & (c.values <= (1 << bits) - 1)
    x, y, z = (c.values for c in cols)
    return np.where(ok, x * 4294967296 + y * 65536 + z, MISSING)


def _smem(raw: dict[str, RawInts], n: int) -> np.ndarray:
    """nsys_sqlite._smem_expr: static + dynamic shared memory + 1 (0: both unknown)."""
    parts = [checked(raw[c], n, (1 << 38) - 1) for c in ("staticSharedMemory",
                                                         "dynamicSharedMemory") if c in raw]
    if not parts:
        return np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)
    total = np.ones(n, dtype=np.int64)
    for p in parts:
        ok = p != MISSING
        known |= ok
        total += np.where(ok, p, 0)
    return np.where(known, total, 0)


def _corr(raw: dict[str, RawInts], n: int, global_id: str) -> np.ndarray:
    """nsys_sqlite._corr_expr: process id * 2**33 + the CUPTI correlation id."""
    if "correlationId" not in raw:
        return np.full(n, MISSING, dtype=np.int64)
    corr = checked(raw["correlationId"], n, CORR_MASK)
    g = raw.get(global_id)
    pid = (np.zeros(n, dtype=np.int64) if g is None else
           np.where(~g.null & (g.values >= 0) & (g.values <= TS_MASK),
                    (g.values >> 24) & PID_MASK, 0))
    return np.where(corr != MISSING, pid * (CORR_MASK + 1) + corr, MISSING)


def activity(db: PageFile, con: sqlite3.Connection, table: str, kernels: bool, memcpy: bool
             ) -> dict[str, np.ndarray]:
    """nsys_sqlite._activity_read, from the pages."""
    names = [*_ACTIVITY_COLUMNS, *(_KERNEL_COLUMNS if kernels else ()),
             *(("copyKind",) if memcpy else ())]

    def columns(raw: dict[str, RawInts], _: np.ndarray | None) -> dict[str, np.ndarray]:
        n = _rows(raw)
        out = {"start": checked_signed(raw.get("start"), n), "dur": _dur(raw, n),
               "devstream": part(raw.get("deviceId"), n, 20) * (1 << 40)
               + part(raw.get("streamId"), n, 40),
               "corr": _corr(raw, n, "globalPid")}
        if kernels:
            out.update({
                "names": part(raw.get("demangledName"), n, 30) * (1 << 32)
                + part(raw.get("shortName"), n, 32),
                "regsmem": part(raw.get("registersPerThread"), n, 16) * (1 << 40)
                + _smem(raw, n),
                "grid": _dims(raw, n, "grid", 31), "block": _dims(raw, n, "block", 16)})
        elif memcpy:
            out["copy_kind"] = checked(raw.get("copyKind"), n, 255)
        return out

    return read_table(db, con, table, names, columns)[0]


def runtime(db: PageFile, con: sqlite3.Connection, table: str, with_thread: bool
            ) -> dict[str, np.ndarray]:
    """nsys_sqlite._runtime_read, from the pages."""

    def columns(raw: dict[str, RawInts], _: np.ndarray | None) -> dict[str, np.ndarray]:
        n = _rows(raw)
        out = {"start": checked_signed(raw.get("start"), n), "dur": _dur(raw, n),
               "name": checked(raw.get("nameId"), n), "corr": _corr(raw, n, "globalTid")}
        if with_thread:
            out["thread"] = checked(raw.get("globalTid"), n)
        return out

    return read_table(db, con, table, ["start", "end", "nameId", "correlationId", "globalTid"],
                      columns)[0]


def nvtx(db: PageFile, con: sqlite3.Connection, table: str
         ) -> tuple[dict[str, np.ndarray], RawText | None]:
    """nsys_sqlite._nvtx_read (its WHERE too) and the ``text`` column, from the pages."""

    def columns(raw: dict[str, RawInts], text: np.ndarray | None) -> dict[str, np.ndarray]:
        n = _rows(raw)
        start, end = raw.get("start"), raw.get("end")
        if start is None or end is None:
            raise PagesUnusable("no start / end")
        e = checked_signed(end, n)
        keep = (e != MISSING) & ~start.null & (e >= start.values)
        if "eventType" in raw:
            t = raw["eventType"]
            keep &= ~t.null & np.isin(t.values, NVTX_RANGE_TYPES)
        out = {"start": checked_signed(start, n)[keep], "end": e[keep],
               "thread": checked(raw.get("globalTid"), n)[keep],
               "text_id": checked(raw.get("textId"), n)[keep]}
        if text is not None:
            out["text"] = text[keep]
        return out

    got, labels = read_table(db, con, table, ["start", "end", "eventType", "globalTid",
                                              "textId"], columns, "text")
    codes = got.pop("text", None)
    return got, (RawText(codes, labels) if codes is not None and labels is not None else None)


def _rows(raw: dict[str, RawInts]) -> int:
    lengths = {len(c.values) for c in raw.values()}
    if len(lengths) > 1:
        raise PagesUnusable("columns of different lengths")
    return lengths.pop() if lengths else 0
