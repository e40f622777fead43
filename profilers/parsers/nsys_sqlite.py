"""Nsight Systems SQLite export (``nsys export --type sqlite``) -> KernelTable + runtime + NVTX.

Tables used, per the documented export schema (created lazily, so any may be absent):
CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, streamId, correlationId, gridX/Y/Z,
blockX/Y/Z, registersPerThread, staticSharedMemory, dynamicSharedMemory, demangledName and
shortName as ids into StringIds), CUPTI_ACTIVITY_KIND_MEMCPY (bytes, copyKind),
CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_RUNTIME (nameId), StringIds(id, value),
NVTX_EVENTS (start, end, text or textId).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from profilers.parsers._io import SQLITE_MAGIC, head_bytes, require_file
from profilers.parsers.kernel_table import concat_kernel_tables, make_kernel_table
from workloads.errors import WorkbenchError

# CUpti_ActivityMemcpyKind
COPY_KINDS = {0: "Unknown", 1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD",
              7: "DtoA", 8: "DtoD", 9: "HtoH", 10: "PtoP"}


@dataclass
class NsysTrace:
    kernels: pd.DataFrame
    runtime: pd.DataFrame
    nvtx: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f'PRAGMA table_info("{table}")')}


def _query(con: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _int_or_none(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            return int(v) if isinstance(v, float) and v == v and abs(v) < 2**62 else None
        except (TypeError, ValueError, OverflowError):
            return None
    return v if abs(v) < 2**62 else None


def _dur(start: Any, end: Any) -> int | None:
    s, e = _int_or_none(start), _int_or_none(end)
    return None if s is None or e is None else e - s


def _kernels(con: sqlite3.Connection, tables: set[str], strings: dict[int, str]) -> pd.DataFrame:
    t = "CUPTI_ACTIVITY_KIND_KERNEL"
    if t not in tables:
        return make_kernel_table({}, source="nsys")
    cols = _columns(con, t)
    want = ["start", "end", "deviceId", "streamId", "correlationId", "gridX", "gridY", "gridZ",
            "blockX", "blockY", "blockZ", "registersPerThread", "staticSharedMemory",
            "dynamicSharedMemory", "demangledName", "shortName"]
    sel = ", ".join(f'"{c}"' if c in cols else "NULL" for c in want)
    rows = _query(con, f'SELECT {sel} FROM "{t}" ORDER BY "start"' if "start" in cols
                  else f'SELECT {sel} FROM "{t}"')
    names = []
    for r in rows:
        name = strings.get(r[14]) if r[14] is not None else None
        names.append(name if name is not None else strings.get(r[15], "<unnamed>"))

    def dims(r: tuple[Any, ...], i: int) -> tuple[int, int, int] | None:
        v = tuple(_int_or_none(x) for x in r[i: i + 3])
        return None if any(x is None for x in v) else v  # type: ignore[return-value]

    def smem(r: tuple[Any, ...]) -> int | None:
        a, b = _int_or_none(r[12]), _int_or_none(r[13])
        return None if a is None and b is None else (a or 0) + (b or 0)

    return make_kernel_table({
        "name": names,
        "start_ns": pd.array([_int_or_none(r[0]) for r in rows], dtype="Int64"),
        "dur_ns": pd.array([_dur(r[0], r[1]) for r in rows], dtype="Int64"),
        "device": pd.array([_int_or_none(r[2]) for r in rows], dtype="Int64"),
        "stream": pd.array([_int_or_none(r[3]) for r in rows], dtype="Int64"),
        "correlation": pd.array([_int_or_none(r[4]) for r in rows], dtype="Int64"),
        "grid": [dims(r, 5) for r in rows],
        "block": [dims(r, 8) for r in rows],
        "registers": pd.array([_int_or_none(r[11]) for r in rows], dtype="Int64"),
        "shared_mem": pd.array([smem(r) for r in rows], dtype="Int64"),
    }, source="nsys")


def _copies(con: sqlite3.Connection, tables: set[str], table: str, kind: str) -> pd.DataFrame:
    if table not in tables:
        return make_kernel_table({}, source="nsys")
    cols = _columns(con, table)
    want = ["start", "end", "deviceId", "streamId", "correlationId", "copyKind", "bytes"]
    sel = ", ".join(f'"{c}"' if c in cols else "NULL" for c in want)
    rows = _query(con, f'SELECT {sel} FROM "{table}"')
    if kind == "memcpy":
        names = [f"Memcpy {COPY_KINDS.get(r[5], 'Unknown')}" for r in rows]
    else:
        names = ["Memset (Device)"] * len(rows)
    return make_kernel_table({
        "name": names, "kind": [kind] * len(rows),
        "start_ns": pd.array([_int_or_none(r[0]) for r in rows], dtype="Int64"),
        "dur_ns": pd.array([_dur(r[0], r[1]) for r in rows], dtype="Int64"),
        "device": pd.array([_int_or_none(r[2]) for r in rows], dtype="Int64"),
        "stream": pd.array([_int_or_none(r[3]) for r in rows], dtype="Int64"),
        "correlation": pd.array([_int_or_none(r[4]) for r in rows], dtype="Int64"),
    }, source="nsys")


def _runtime(con: sqlite3.Connection, tables: set[str], strings: dict[int, str]) -> pd.DataFrame:
    t = "CUPTI_ACTIVITY_KIND_RUNTIME"
    empty = pd.DataFrame({"name": pd.Categorical([]), "start_ns": pd.array([], dtype="Int64"),
                          "dur_ns": pd.array([], dtype="Int64"),
                          "correlation": pd.array([], dtype="Int64")})
    if t not in tables:
        return empty
    cols = _columns(con, t)
    sel = ", ".join(f'"{c}"' if c in cols else "NULL"
                    for c in ("start", "end", "nameId", "correlationId"))
    rows = _query(con, f'SELECT {sel} FROM "{t}"')
    return pd.DataFrame({
        "name": pd.Categorical([strings.get(r[2], "<unnamed>") for r in rows]),
        "start_ns": pd.array([_int_or_none(r[0]) for r in rows], dtype="Int64"),
        "dur_ns": pd.array([_dur(r[0], r[1]) for r in rows], dtype="Int64"),
        "correlation": pd.array([_int_or_none(r[3]) for r in rows], dtype="Int64"),
    })


def _nvtx(con: sqlite3.Connection, tables: set[str], strings: dict[int, str]) -> pd.DataFrame:
    t = "NVTX_EVENTS"
    if t not in tables:
        return pd.DataFrame({"text": pd.array([], dtype=object),
                             "start_ns": pd.array([], dtype="Int64"),
                             "dur_ns": pd.array([], dtype="Int64")})
    cols = _columns(con, t)
    sel = ", ".join(f'"{c}"' if c in cols else "NULL" for c in ("start", "end", "text", "textId"))
    rows = _query(con, f'SELECT {sel} FROM "{t}"')
    texts = [r[2] if isinstance(r[2], str) else strings.get(r[3]) for r in rows]
    return pd.DataFrame({
        "text": pd.array(texts, dtype=object),
        "start_ns": pd.array([_int_or_none(r[0]) for r in rows], dtype="Int64"),
        "dur_ns": pd.array([_dur(r[0], r[1]) for r in rows], dtype="Int64"),
    })


def load_nsys_sqlite(path: str | os.PathLike[str]) -> NsysTrace:
    p = require_file(path, "nsys SQLite export")
    if not head_bytes(p, 16).startswith(SQLITE_MAGIC):
        raise WorkbenchError(f"{p}: not an SQLite database",
                             "export with: nsys export --type sqlite report.nsys-rep")
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise WorkbenchError(f"{p}: cannot open SQLite ({exc})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "CUPTI_ACTIVITY_KIND_KERNEL" not in tables and "StringIds" not in tables:
            raise WorkbenchError(f"{p}: SQLite file is not an nsys export (no CUPTI tables)")
        strings: dict[int, str] = {}
        if "StringIds" in tables:
            strings = {i: str(v) for i, v in con.execute('SELECT id, value FROM "StringIds"')}
        parts = [_kernels(con, tables, strings),
                 _copies(con, tables, "CUPTI_ACTIVITY_KIND_MEMCPY", "memcpy"),
                 _copies(con, tables, "CUPTI_ACTIVITY_KIND_MEMSET", "memset")]
        kernels = concat_kernel_tables([t for t in parts if len(t)] or parts[:1])
        kernels = kernels.sort_values("start_ns", kind="stable", na_position="last",
                                      ignore_index=True)
        runtime = _runtime(con, tables, strings)
        nvtx = _nvtx(con, tables, strings)
    except sqlite3.DatabaseError as exc:
        raise WorkbenchError(f"{p}: corrupt or unreadable SQLite ({exc})") from None
    finally:
        con.close()
    return NsysTrace(kernels, runtime, nvtx, {"path": str(p), "size": os.path.getsize(p),
                                              "tables": sorted(tables)})
