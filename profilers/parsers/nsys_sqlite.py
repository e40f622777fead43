"""Nsight Systems SQLite export (``nsys export --type sqlite``) -> KernelTable + runtime + NVTX.

Tables used, per the documented export schema (created lazily, so any may be absent):
CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, streamId, correlationId, gridX/Y/Z,
blockX/Y/Z, registersPerThread, staticSharedMemory, dynamicSharedMemory, demangledName and
shortName as ids into StringIds), CUPTI_ACTIVITY_KIND_MEMCPY (copyKind), _MEMSET,
CUPTI_ACTIVITY_KIND_RUNTIME (nameId, correlationId, globalTid), StringIds(id, value),
NVTX_EVENTS (start, end, eventType, text or textId, globalTid), and for the device
TARGET_INFO_GPU (name, smCount, clockRate, memoryBandwidth; TARGET_INFO_CUDA_GPU in some
versions) or TARGET_INFO_CUDA_DEVICE (numMultiprocessors only), TARGET_INFO_SYSTEM_ENV
(NvDriverVersion).

How: each table's columns come from the file's pages, decoded in numpy (nsys_pages: the
well-formed file, where that reading is certain), else from SQL, where SQLite does the per-row
work — type checks, end - start, packing grid/block triples into one integer — and hands back
text that numpy reads as int64 columns (_sqlite_columns); both give the same columns
(nsys_page_reads mirrors the SQL expressions). Only the distinct name ids and distinct
grid/block triples become Python objects. A value of the wrong type (text in a numeric column)
is <NA>, never 0; an end before its start leaves the duration <NA> and is counted in
``meta["notes"]``.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers import nsys_page_reads as page_reads
from profilers.parsers._io import SQLITE_MAGIC, head_bytes, input_limits, require_file
from profilers.parsers._sqlite_columns import (
    MISSING,
    TS_MASK,
    ColumnRead,
    checked,
    checked_signed,
    part,
    quote,
    read_columns,
    strings_for,
    table_columns,
    unpack,
)
from profilers.parsers.kernel_table import make_kernel_table
from profilers.parsers.nsys_page_reads import CORR_MASK, NVTX_RANGE_TYPES, PID_MASK
from profilers.parsers.nsys_pages import PagesUnusable, RawText, open_db
from profilers.parsers.ranges import empty_ranges, ranges_frame
from workloads.errors import WorkbenchError

KERNELS = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
NVTX = "NVTX_EVENTS"

# CUpti_ActivityMemcpyKind
COPY_KINDS = {0: "Unknown", 1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD",
              7: "DtoA", 8: "DtoD", 9: "HtoH", 10: "PtoP"}
_GPU_TABLES = ("TARGET_INFO_GPU", "TARGET_INFO_CUDA_GPU")


@dataclass
class NsysTrace:
    kernels: pd.DataFrame  # KernelTable (source "nsys")
    runtime: pd.DataFrame  # name, start_ns, dur_ns, correlation, thread
    nvtx: pd.DataFrame  # NVTX ranges (profilers.parsers.ranges frame)
    meta: dict[str, Any] = field(default_factory=dict)


def _opt(cols: set[str], name: str, mask: int = TS_MASK) -> str:
    return checked(name, mask) if name in cols else "NULL"


def _ts(cols: set[str], name: str) -> str:
    return checked_signed(name) if name in cols else "NULL"


def _has(cols: set[str], name: str) -> str | None:
    return name if name in cols else None


def _dur_expr(cols: set[str]) -> str:
    if not {"start", "end"} <= cols:
        return "NULL"
    s, e = checked_signed("start"), checked_signed("end")
    return f'CASE WHEN ({s}) IS NOT NULL AND ({e}) >= "start" THEN "end" - "start" END'


def _dims_expr(cols: set[str], prefix: str, x_bits: int) -> str:
    """x * 2**32 + y * 2**16 + z in one integer (CUDA limits: x < 2**31, y and z < 2**16)."""
    names = [f"{prefix}{a}" for a in "XYZ"]
    if not set(names) <= cols:
        return "NULL"
    x, y, z = (quote(n) for n in names)
    ok = " AND ".join(f"({c} & {mask}) = {c}" for c, mask in
                      ((x, (1 << x_bits) - 1), (y, 65535), (z, 65535)))
    return f"CASE WHEN {ok} THEN {x} * 4294967296 + {y} * 65536 + {z} END"


def _smem_expr(cols: set[str]) -> str:
    """Static + dynamic shared memory + 1 (0: both unknown), for ``part``-style packing."""
    parts = [checked(c, (1 << 38) - 1) for c in ("staticSharedMemory", "dynamicSharedMemory")
             if c in cols]
    if not parts:
        return "0"
    known = " OR ".join(f"({p}) IS NOT NULL" for p in parts)
    total = " + ".join(f"coalesce({p}, 0)" for p in parts)
    return f"CASE WHEN {known} THEN {total} + 1 ELSE 0 END"


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of an int64 array by hashing (O(n); only
    the distinct values are sorted) — per-row columns of a big export have few values."""
    codes, uniq = pd.factorize(values, sort=True)
    return np.asarray(uniq, dtype=np.int64), codes.astype(np.int64)


def _masked(values: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 array over ``values`` itself (MISSING -> <NA>; the array is reused)."""
    mask = values == MISSING
    values[mask] = 0
    return pd.arrays.IntegerArray(values, mask)


def _dims_objects(packed: np.ndarray) -> np.ndarray:
    """Packed grid/block integers -> an object array of (x, y, z) tuples or None; one tuple
    per distinct value, shared by every row that has it."""
    uniq, inverse = _unique_inverse(packed)
    table = np.empty(len(uniq), dtype=object)
    for i, v in enumerate(uniq.tolist()):
        table[i] = None if v == MISSING else (v >> 32, (v >> 16) & 0xFFFF, v & 0xFFFF)
    return table[inverse] if len(packed) else np.empty(0, dtype=object)


# Packed fields: device (20 bits) | stream (40), registers (16) | shared memory (40),
# demangled name id (30) | short name id (32); each part + 1, 0 = missing.
def _activity_read(cols: set[str], table: str) -> ColumnRead:
    exprs = {"start": _ts(cols, "start"), "dur": _dur_expr(cols),
             "devstream": f'{part(_has(cols, "deviceId"), 20)} * {1 << 40} + '
                          f'{part(_has(cols, "streamId"), 40)}',
             "corr": _corr_expr(cols, "globalPid")}
    if table == KERNELS:
        exprs.update({
            "names": f'{part(_has(cols, "demangledName"), 30)} * {1 << 32} + '
                     f'{part(_has(cols, "shortName"), 32)}',
            "regsmem": f'{part(_has(cols, "registersPerThread"), 16)} * {1 << 40} + '
                       f'{_smem_expr(cols)}',
            "grid": _dims_expr(cols, "grid", 31), "block": _dims_expr(cols, "block", 16)})
    elif table == MEMCPY:
        exprs["copy_kind"] = _opt(cols, "copyKind", 255)
    return ColumnRead(table, exprs)


def _unpack_activity(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(cols)
    packed = out.pop("devstream")
    out["device"], out["stream"] = unpack(packed, 40, 20), unpack(packed, 0, 40)
    if "names" in out:
        packed = out.pop("names")
        out["name"], out["short"] = unpack(packed, 32, 30), unpack(packed, 0, 32)
        packed = out.pop("regsmem")
        out["regs"], out["smem"] = unpack(packed, 40, 16), unpack(packed, 0, 40)
    return out


def _kernel_names(con: sqlite3.Connection, k: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """(code per row, names): the demangled name where StringIds has it, else the short one."""
    strings = strings_for(con, np.concatenate([k["name"], k["short"]]))
    ids = np.where(np.isin(k["name"], np.fromiter(strings, dtype=np.int64, count=len(strings))),
                   k["name"], k["short"])
    uniq, codes = _unique_inverse(ids)
    return codes, [strings.get(int(i), "<unnamed>") for i in uniq]


def _kernel_table(con: sqlite3.Connection, reads: dict[str, dict[str, np.ndarray]],
                  notes: list[str]) -> pd.DataFrame:
    parts = [(kind, _unpack_activity(reads.pop(table))) for kind, table in
             (("kernel", KERNELS), ("memcpy", MEMCPY), ("memset", MEMSET)) if table in reads]
    names: list[str] = []
    codes: list[np.ndarray] = []
    for kind, cols in parts:
        if kind == "kernel":
            row_codes, kernel_names = _kernel_names(con, cols)
        elif kind == "memcpy":
            kinds = np.where(cols["copy_kind"] == MISSING, 0, cols["copy_kind"])
            uniq, row_codes = _unique_inverse(kinds)
            kernel_names = [f"Memcpy {COPY_KINDS.get(int(v), 'Unknown')}" for v in uniq]
        else:
            row_codes = np.zeros(len(cols["start"]), dtype=np.int64)
            kernel_names = ["Memset (Device)"]
        codes.append(row_codes.astype(np.int64) + len(names))
        names += kernel_names
    n_rows = [len(cols["start"]) for _, cols in parts]
    if not parts or not sum(n_rows):
        return make_kernel_table({}, source="nsys")

    def col(key: str) -> np.ndarray:
        """The column over all parts, in start order (a fresh array: callers may reuse it)."""
        whole = np.concatenate([cols.pop(key) if key in cols else
                                np.full(n, MISSING, dtype=np.int64)
                                for (_, cols), n in zip(parts, n_rows, strict=True)])
        return whole[order]

    starts = np.concatenate([cols["start"] for _, cols in parts])
    order = np.argsort(np.where(starts == MISSING, np.iinfo(np.int64).max, starts), kind="stable")
    del starts
    start, dur = col("start"), col("dur")
    bad = int((dur == MISSING).sum())
    if bad:
        notes.append(f"{bad:,} of {len(dur):,} GPU activities have no valid start/end (a "
                     "non-integer value such as text, or an end before the start): their "
                     "durations are null and left out of every total")
    # A kernel called "Memset (Device)" and the memset rows share one category.
    uniq_names, remap = np.unique(np.array(names, dtype=object), return_inverse=True)
    name_codes = remap[np.concatenate(codes)]
    kind_codes = np.concatenate([np.full(n, i, dtype=np.int8) for i, n in enumerate(n_rows)])
    return make_kernel_table({
        "name": pd.Categorical.from_codes(name_codes[order],
                                          categories=pd.Index(uniq_names, dtype=object)),
        "kind": pd.Categorical.from_codes(kind_codes[order],
                                          categories=[kind for kind, _ in parts]),
        "start_ns": _masked(start), "dur_ns": _masked(dur),
        "device": _masked(col("device")), "stream": _masked(col("stream")),
        "correlation": _masked(col("corr")),
        "grid": _dims_objects(col("grid")), "block": _dims_objects(col("block")),
        "registers": _masked(col("regs")), "shared_mem": _masked(col("smem")),
    }, source="nsys")


def _corr_expr(cols: set[str], global_id: str) -> str:
    """process id (bits 24-47 of nsys's serialized globalPid/globalTid) * 2**33 + the CUPTI
    correlation id: correlation ids restart in every process, so a 2-process export repeats
    them and a kernel must meet the launch call of its own process."""
    if "correlationId" not in cols:
        return "NULL"
    corr = checked("correlationId", CORR_MASK)
    pid = (f'CASE WHEN ({quote(global_id)} & {TS_MASK}) = {quote(global_id)} '
           f'THEN ({quote(global_id)} >> 24) & {PID_MASK} ELSE 0 END' if global_id in cols
           else "0")
    return f"CASE WHEN ({corr}) IS NOT NULL THEN ({pid}) * {CORR_MASK + 1} + \"correlationId\" END"


def _unique_correlations(*columns: np.ndarray) -> None:
    """In place: (process, correlation) pairs -> one correlation id space. With one process
    the ids stay CUPTI's own; with several, id = process index * 2**33 + CUPTI id."""
    pids = _unique_inverse(np.concatenate([c[c != MISSING] >> 33 for c in columns]))[0]
    for c in columns:
        ok = c != MISSING
        if len(pids) > 1:
            c[ok] = np.searchsorted(pids, c[ok] >> 33) * (CORR_MASK + 1) + (c[ok] & CORR_MASK)
        else:
            c[ok] &= CORR_MASK


def _runtime_read(cols: set[str], with_thread: bool) -> ColumnRead:
    exprs = {"start": _ts(cols, "start"), "dur": _dur_expr(cols),
             "name": _opt(cols, "nameId"), "corr": _corr_expr(cols, "globalTid")}
    if with_thread:
        exprs["thread"] = _opt(cols, "globalTid")
    return ColumnRead(RUNTIME, exprs)


def _runtime(con: sqlite3.Connection, r: dict[str, np.ndarray] | None, with_thread: bool
             ) -> pd.DataFrame:
    if r is None:
        r = {key: np.empty(0, dtype=np.int64) for key in ("start", "dur", "name", "corr", "thread")}
    name_ids = r["name"]
    strings = strings_for(con, name_ids)
    uniq, codes = _unique_inverse(name_ids)
    labels = [strings.get(int(i), "<unnamed>") for i in uniq]
    uniq_labels, remap = np.unique(np.array(labels, dtype=object), return_inverse=True)
    frame = pd.DataFrame({
        "name": pd.Categorical.from_codes(remap[codes] if len(codes) else codes,
                                          categories=pd.Index(uniq_labels, dtype=object)),
        "start_ns": _masked(r["start"]), "dur_ns": _masked(r["dur"]),
        "correlation": _masked(r["corr"]),
    })
    if with_thread:
        frame["thread"] = _masked(r["thread"])
    return frame


def _nvtx_read(con: sqlite3.Connection, tables: set[str], max_ranges: int | None,
               notes: list[str]) -> ColumnRead | None:
    """What to read of NVTX_EVENTS (None: nothing, with the reason in ``notes``)."""
    if NVTX not in tables:
        return None
    cols = table_columns(con, NVTX)
    if not {"start", "end"} <= cols:
        return None
    n_rows = con.execute(f"SELECT count(*) FROM {NVTX}").fetchone()[0]
    if max_ranges is not None and n_rows > max_ranges:
        notes.append(f"{n_rows:,} NVTX events, more than the {max_ranges:,} read (the input "
                     "limit --max-events, or AIPERF_NVTX_MAX_RANGES): no regions (analyze "
                     f"--max-events {n_rows} or AIPERF_NVTX_MAX_RANGES={n_rows} reads them)")
        return None
    where = (f'"eventType" IN ({",".join(map(str, NVTX_RANGE_TYPES))})'
             if "eventType" in cols else "1")
    where += f' AND ({checked_signed("end")}) >= "start"'
    return ColumnRead(NVTX, {"start": checked_signed("start"), "end": checked_signed("end"),
                             "thread": _opt(cols, "globalTid"),
                             "text_id": _opt(cols, "textId")}, where)


def _nvtx(con: sqlite3.Connection, read: ColumnRead, r: dict[str, np.ndarray],
          text: RawText | None) -> pd.DataFrame:
    """The ranges frame; a range's name is its ``text`` where that is text, else the string
    of its ``textId``. ``text``: that column from the pages (None: read it here with SQL)."""
    if text is None:
        text = _sql_text(con, read) if "text" in table_columns(con, NVTX) else RawText(
            np.full(len(r["start"]), -1, dtype=np.int64), [])
    # names by code: the texts, then the registered strings of the ranges without text
    no_text = text.codes < 0
    ids, id_codes = _unique_inverse(r["text_id"][no_text])
    strings = strings_for(con, ids)
    names = np.array(text.labels + [strings.get(int(i), "<unnamed>") for i in ids.tolist()],
                     dtype=object)
    codes = text.codes.copy()
    codes[no_text] = len(text.labels) + id_codes.ravel()
    # the names used, sorted, as pd.Categorical(list of names) has them
    used, row_used = _unique_inverse(codes)
    categories, remap = np.unique(names[used], return_inverse=True)
    n = len(codes)
    # kind and device as arrays, not as n Python objects for ranges_frame to convert
    return ranges_frame(pd.Categorical.from_codes(remap.ravel()[row_used.ravel()],
                                                  categories=pd.Index(categories.tolist())),
                        _masked(r["start"]), _masked(r["end"]),
                        pd.Categorical.from_codes(np.zeros(n, dtype=np.int8),
                                                  categories=["nvtx"]) if n else "nvtx",
                        thread=_masked(r["thread"]),
                        device=pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64),
                                                      np.ones(n, dtype=bool)))


def _sql_text(con: sqlite3.Connection, read: ColumnRead) -> RawText:
    """The ``text`` column of the ranges read, with SQL: a code per row (-1: not text)."""
    texts = [t if isinstance(t, str) else None for (t,) in con.execute(
        f"SELECT text FROM {NVTX} WHERE {read.where} ORDER BY rowid")]
    codes, labels = pd.factorize(pd.Series(texts, dtype=object))
    return RawText(np.asarray(codes, dtype=np.int64), [str(x) for x in labels])


def _read_tables(p: Any, uri: str, reads: list[ColumnRead], with_thread: bool,
                 page_reader: bool) -> tuple[dict[str, dict[str, np.ndarray]], RawText | None]:
    """Every read's columns: from the file's pages where that applies (nsys_pages), the
    other tables with SQL. One thread: a second one (NVTX beside the rest) saved no CPU and
    its malloc arena cost ~100 MB of peak RSS on a 120 MB export."""
    got: dict[str, dict[str, np.ndarray]] = {}
    text: RawText | None = None
    pages = open_db(p) if page_reader else None
    con = sqlite3.connect(uri, uri=True)
    try:
        for read in reads:
            if pages is None:
                break
            try:
                if read.table == NVTX:
                    got[NVTX], text = page_reads.nvtx(pages, con, NVTX)
                elif read.table == RUNTIME:
                    got[RUNTIME] = page_reads.runtime(pages, con, RUNTIME, with_thread)
                else:
                    got[read.table] = page_reads.activity(pages, con, read.table,
                                                          read.table == KERNELS,
                                                          read.table == MEMCPY)
            except PagesUnusable:
                pass
    finally:
        con.close()
    rest = [r for r in reads if r.table not in got]
    got.update(zip([r.table for r in rest],
                   read_columns(lambda: sqlite3.connect(uri, uri=True), rest), strict=True))
    return got, text


def _row_dicts(con: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM {quote(table)} LIMIT 256")
    keys = [d[0] for d in cur.description]
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


def _int(v: Any) -> int | None:
    return v if type(v) is int and abs(v) < 2**62 else None


def gpu_properties(con: sqlite3.Connection, tables: set[str]) -> list[dict[str, Any]]:
    """The GPUs the report names, in Kineto's ``deviceProperties`` shape (id, name, numSms,
    ...) plus nsys's own clock and bandwidth; [] when the export has no GPU table."""
    for table in _GPU_TABLES:
        if table in tables:
            out = []
            for row in _row_dicts(con, table):
                name = row.get("name")
                out.append({
                    "id": _int(row.get("id")),
                    "name": name.strip() if isinstance(name, str) and name.strip() else None,
                    "numSms": _int(row.get("smCount")),
                    "clockRate_hz": _int(row.get("clockRate")),
                    "memoryBandwidth_Bps": _int(row.get("memoryBandwidth")),
                    "totalGlobalMem": _int(row.get("totalMemory")),
                    "computeMajor": _int(row.get("computeMajor")),
                    "computeMinor": _int(row.get("computeMinor")),
                    "busLocation": row.get("busLocation") if isinstance(
                        row.get("busLocation"), str) else None,
                    "source": table})
            if out:
                return sorted(out, key=lambda g: (g["id"] is None, g["id"] or 0))
    if "TARGET_INFO_CUDA_DEVICE" in tables:
        return [{"id": _int(row.get("gpuId")), "name": None,
                 "numSms": _int(row.get("numMultiprocessors")),
                 "source": "TARGET_INFO_CUDA_DEVICE"}
                for row in _row_dicts(con, "TARGET_INFO_CUDA_DEVICE")]
    return []


def _driver(con: sqlite3.Connection, tables: set[str]) -> str | None:
    if "TARGET_INFO_SYSTEM_ENV" not in tables:
        return None
    cols = table_columns(con, "TARGET_INFO_SYSTEM_ENV")
    if not {"name", "value"} <= cols:
        return None
    row = con.execute("SELECT value FROM TARGET_INFO_SYSTEM_ENV WHERE name = 'NvDriverVersion' "
                      "LIMIT 1").fetchone()
    return row[0] if row and isinstance(row[0], str) and row[0].strip() else None


def _device_notes(props: list[dict[str, Any]]) -> list[str]:
    named = [p for p in props if p.get("name")]
    if not named:
        return ["the export names no GPU (no TARGET_INFO_GPU rows): no device name, so no "
                "roofline ceilings"]
    if len({p["name"] for p in named}) > 1:
        return ["the export names several GPU models: "
                + ", ".join(sorted({p["name"] for p in named}))
                + f"; ceilings follow {named[0]['name']}"]
    return []


def nvtx_max_ranges() -> int | None:
    """The most NVTX events read (None: all): AIPERF_NVTX_MAX_RANGES where set, else the
    input limit on events (``analyze --max-events``; a torch emit_nvtx run writes one range
    per op, ~1M in a 120 MB export, read with its regions in ~1 s)."""
    raw = os.environ.get("AIPERF_NVTX_MAX_RANGES")
    try:
        return int(raw) if raw else input_limits().max_events
    except ValueError:
        raise WorkbenchError(f"AIPERF_NVTX_MAX_RANGES={raw!r} is not a number",
                             "e.g. AIPERF_NVTX_MAX_RANGES=2000000") from None


def load_nsys_sqlite(path: str | os.PathLike[str], max_nvtx_ranges: int | None = None,
                     page_reader: bool = True) -> NsysTrace:
    """``page_reader``: read tables from the file's pages where that applies (False: all
    with SQL — the same result, slower; for tests and benchmarks)."""
    p = require_file(path, "nsys SQLite export")
    if not head_bytes(p, 16).startswith(SQLITE_MAGIC):
        raise WorkbenchError(f"{p}: not an SQLite database",
                             "export with: nsys export --type sqlite report.nsys-rep")
    # immutable: no locks and no journal look-ups (an export is not written while we read it)
    uri = f"file:{p}?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise WorkbenchError(f"{p}: cannot open SQLite ({exc})") from None
    notes: list[str] = []
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if KERNELS not in tables and "StringIds" not in tables:
            raise WorkbenchError(f"{p}: SQLite file is not an nsys export (no CUPTI tables)")
        if "StringIds" not in tables:
            con.execute("CREATE TEMP TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT)")
        limit = nvtx_max_ranges() if max_nvtx_ranges is None else max_nvtx_ranges
        nvtx_read = _nvtx_read(con, tables, limit, notes)
        reads = [_activity_read(table_columns(con, t), t)
                 for t in (KERNELS, MEMCPY, MEMSET) if t in tables]
        if RUNTIME in tables:
            reads.append(_runtime_read(table_columns(con, RUNTIME), nvtx_read is not None))
        if nvtx_read is not None:
            reads.append(nvtx_read)
        got, text = _read_tables(p, uri, reads, nvtx_read is not None, page_reader)
        _unique_correlations(*(got[t]["corr"] for t in (KERNELS, MEMCPY, MEMSET, RUNTIME)
                               if t in got))
        kernels = _kernel_table(con, got, notes)
        nvtx = (_nvtx(con, nvtx_read, got[NVTX], text) if nvtx_read is not None
                else empty_ranges())
        runtime = _runtime(con, got.get(RUNTIME), with_thread=nvtx_read is not None)
        props = gpu_properties(con, tables)
        driver = _driver(con, tables)
    except sqlite3.DatabaseError as exc:
        raise WorkbenchError(f"{p}: corrupt or unreadable SQLite ({exc})") from None
    finally:
        con.close()
    notes += _device_notes(props)
    return NsysTrace(kernels, runtime, nvtx, {
        "path": str(p), "size": os.path.getsize(p), "tables": sorted(tables),
        "device_properties": [q for q in props if q.get("name")], "gpus": props,
        "driver": driver, "notes": notes})
