"""Integer columns out of SQLite without a Python object per row.

Why: ``cursor.fetchall()`` on a 265k-row activity table builds a tuple and an int object per
value (millions of objects, seconds and hundreds of MB). Here SQLite itself formats each row's
values as decimal text and ``group_concat`` joins a chunk of rows into one string per column,
which numpy parses back as int64 in one call. Chunks are rowid ranges, so
memory is bounded by the chunk size, and chunks run on two threads: Python's sqlite3 releases
the GIL while SQLite steps, so two chunks really run at once.

Each value costs a conversion to text, so small values share one integer: ``part(column, bits)`` is the
column + 1 when it is an integer in [0, 2**bits - 1), else 0 (missing); a packed field is
``part(a) * 2**k + part(b)``, unpacked with ``unpack``.

Type checks run in SQL and in one operation: ``(c & mask) = c`` holds only for an integer in
[0, mask] — text ('abc' & mask is 0, and text never equals a number), reals with a fraction,
negatives and NULL fail. A failed value is missing (<NA>), never 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

MISSING = np.iinfo(np.int64).min
TS_MASK = (1 << 62) - 1  # timestamps and other big non-negative integers
CHUNK_ROWS = 1 << 17
THREADS = 2


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def checked(column: str, mask: int = TS_MASK) -> str:
    """SQL for ``column`` as an integer in [0, mask], else NULL."""
    c = quote(column)
    return f"CASE WHEN ({c} & {mask}) = {c} THEN {c} END"


def checked_signed(column: str) -> str:
    """SQL for ``column`` as an integer in [-2**62, 2**62], else NULL (timestamps: an export
    cut from a longer one can start before zero)."""
    c = quote(column)
    return f"CASE WHEN ({c} & -1) = {c} AND {c} BETWEEN -{TS_MASK + 1} AND {TS_MASK + 1} THEN {c} END"


def part(column: str | None, bits: int) -> str:
    """SQL: column + 1 when it is an integer in [0, 2**bits - 1), else 0."""
    if column is None:
        return "0"
    c, mask = quote(column), (1 << bits) - 1
    return f"CASE WHEN ({c} & {mask}) = {c} AND {c} < {mask} THEN {c} + 1 ELSE 0 END"


def unpack(values: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """The ``part`` stored at ``shift`` in packed ``values``, as int64 with ``MISSING``."""
    raw = (values >> shift) & ((1 << bits) - 1)
    raw = np.where(values == MISSING, 0, raw)
    return np.where(raw == 0, MISSING, raw - 1)


def table_columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({quote(table)})")}


@dataclass
class ColumnRead:
    """One table's integer columns: ``exprs`` maps an output name to an SQL expression."""

    table: str
    exprs: dict[str, str]
    where: str = ""


def _chunk_sql(read: ColumnRead) -> str:
    # One group_concat per column: SQLite writes integers as decimal text itself (no printf
    # format to interpret per value: half the cost), and numpy parses the text in C.
    # group_concat skips NULLs, so a missing value is written as the MISSING sentinel.
    values = ", ".join(f"group_concat(coalesce({e}, {MISSING}))" for e in read.exprs.values())
    cond = f" AND ({read.where})" if read.where else ""
    return f"SELECT {values} FROM {quote(read.table)} WHERE rowid BETWEEN ? AND ?{cond}"


def _decode(texts: tuple[str | None, ...]) -> list[np.ndarray]:
    """The chunk's columns as int64 arrays."""
    if not texts or texts[0] is None:
        return [np.empty(0, dtype=np.int64) for _ in texts]
    cols = [np.fromstring(t or "", dtype=np.int64, sep=",") for t in texts]
    if len({len(c) for c in cols}) != 1:  # cannot happen with the sentinel; never misalign
        raise sqlite3.DatabaseError("column chunks of different lengths")
    return cols


def read_columns(connect: Callable[[], sqlite3.Connection], reads: list[ColumnRead],
                 chunk_rows: int = CHUNK_ROWS, threads: int = THREADS
                 ) -> list[dict[str, np.ndarray]]:
    """For each read, ``{name: int64 array}`` (NULL -> ``MISSING``), rows in rowid order.

    ``connect`` opens a connection; each thread uses its own (sqlite3 connections are not
    shared across threads)."""
    con = connect()
    try:
        jobs: list[tuple[int, str, int, int]] = []
        for i, read in enumerate(reads):
            table = quote(read.table)
            lo, hi, n = con.execute(f"SELECT min(rowid), max(rowid), count(*) FROM {table}"
                                    ).fetchone()
            if lo is None or not read.exprs:
                continue
            sql = _chunk_sql(read)
            if hi - lo < 2 * n + chunk_rows:
                starts = list(range(lo, hi + 1, chunk_rows))
            else:  # sparse rowids (one row at rowid 2**62): chunks start at every chunk_rows-th row
                starts = [r for (r,) in con.execute(
                    f"SELECT rowid FROM (SELECT rowid, row_number() OVER (ORDER BY rowid) AS k "
                    f"FROM {table}) WHERE k % {chunk_rows} = 1")]
            jobs += [(i, sql, a, b - 1) for a, b in zip(starts, [*starts[1:], hi + 1], strict=True)]
    finally:
        con.close()

    def run(batch: list[tuple[int, str, int, int]]) -> list[tuple[int, int, list[np.ndarray]]]:
        local = connect()
        try:
            return [(i, a, _decode(local.execute(sql, (a, b)).fetchone())) for i, sql, a, b in batch]
        finally:
            local.close()

    # Interleaved batches: each thread gets every other chunk, so big tables split evenly.
    batches = [jobs[t::threads] for t in range(threads) if jobs[t::threads]]
    if len(batches) > 1:
        with ThreadPoolExecutor(max_workers=len(batches)) as pool:
            done = [item for result in pool.map(run, batches) for item in result]
    else:
        done = run(batches[0]) if batches else []
    done.sort(key=lambda item: (item[0], item[1]))
    out = []
    for i, read in enumerate(reads):
        blocks = [block for j, _, block in done if j == i]
        out.append({name: np.concatenate([b[k] for b in blocks]) if blocks
                    else np.empty(0, dtype=np.int64) for k, name in enumerate(read.exprs)})
    return out


def strings_for(con: sqlite3.Connection, ids: np.ndarray, table: str = "StringIds"
                ) -> dict[int, str]:
    """``{id: value}`` of StringIds for just the ``ids`` used (a big StringIds table — every
    NVTX text a run registered — is never read whole)."""
    wanted = [int(i) for i in np.unique(ids) if i != MISSING]
    found: dict[int, str] = {}
    for at in range(0, len(wanted), 4096):
        chunk = ",".join(str(i) for i in wanted[at: at + 4096])
        for key, value in con.execute(
                f"SELECT id, value FROM {quote(table)} WHERE id IN ({chunk})"):
            if isinstance(key, int):
                found[key] = value if isinstance(value, str) else str(value)
    return found
