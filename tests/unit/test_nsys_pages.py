"""The nsys page reader (profilers.parsers.nsys_pages): the same frames as the SQL reader on
every database, and the SQL reader wherever the pages cannot be read with certainty."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profilers.parsers import nsys_page_reads, nsys_pages
from profilers.parsers.nsys_pages import PagesUnusable, open_db, read_table
from profilers.parsers.nsys_sqlite import load_nsys_sqlite
from tests.unit.external_data import external
from tests.unit.test_parsers_nsys import SCHEMA, make_db

KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"


def _values_only(raw, text):
    return {name: col.values for name, col in raw.items()}


def _same(path: Path) -> None:
    """Both readers, all NVTX ranges read: identical frames and meta."""
    sql = load_nsys_sqlite(path, max_nvtx_ranges=10**9, page_reader=False)
    pages = load_nsys_sqlite(path, max_nvtx_ranges=10**9)
    for a, b in ((sql.kernels, pages.kernels), (sql.runtime, pages.runtime),
                 (sql.nvtx, pages.nvtx)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert sql.meta == pages.meta


# each side of every bound the reads check: field widths 16-40 bits, 2**62 timestamps
EDGES = [v for k in (8, 16, 20, 24, 30, 31, 32, 33, 38, 40, 62, 63)
         for v in (2**k - 2, 2**k - 1, 2**k, 2**k + 1, -(2**k), -(2**k) - 1) if -(2**63) <= v < 2**63]


def _values(rng: random.Random, hostile: bool | str) -> object:
    """A clean value, a hostile integer or NULL (``"ints"``: the pages still apply), or any
    hostile value (text, real, blob: the table goes to SQL)."""
    if not hostile:
        return rng.choice([rng.randint(0, 2**40), rng.randint(0, 300), 0, 1])
    ints = [rng.randint(0, 2**40), rng.randint(0, 300), 0, 1, None, -7, rng.choice(EDGES),
            rng.choice(EDGES), rng.randint(-(2**20), 2**20)]
    return rng.choice(ints if hostile == "ints" else [*ints, 1.5, "text", b"\x00blob"])


def _random_db(path: Path, rng: random.Random, rows: int, hostile: bool | str,
               page_size: int = 4096) -> Path:
    """The export schema filled with random rows: clean values only, or any type and range."""
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size = {page_size}")
    con.executescript(SCHEMA.replace(" NOT NULL", "") if hostile else SCHEMA)
    con.executemany("INSERT INTO StringIds VALUES (?, ?)",
                    [(i, f"kernel_{i}" + "x" * rng.randint(0, 90)) for i in range(40)])
    for table in ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                  "CUPTI_ACTIVITY_KIND_MEMSET", "CUPTI_ACTIVITY_KIND_RUNTIME", "NVTX_EVENTS"):
        n_cols = len(con.execute(f"PRAGMA table_info({table})").fetchall())
        data = []
        for _ in range(rows):
            start = rng.randint(0, 10**12)
            row = [start, start + rng.randint(0, 10**6)] + [
                rng.randint(0, 45) if hostile is False and rng.random() < 0.5 else
                _values(rng, hostile) for _ in range(n_cols - 2)]
            if table == "NVTX_EVENTS":
                row[2] = (rng.choice([59, 60, 34, 59]) if not hostile or rng.random() < 0.7
                          else _values(rng, hostile))
                row[6] = rng.choice([None, "step", "layer " + "é" * rng.randint(0, 80),
                                     f"op, op_id = {rng.randint(0, 50)}"])
            if hostile and rng.random() < 0.2:
                row[rng.randrange(2)] = _values(rng, hostile)
            data.append(row)
        con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * n_cols)})", data)
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("seed", range(6))
def test_random_clean_databases_read_from_pages_as_with_sql(tmp_path, seed, monkeypatch):
    """Thousands of rows over several b-tree levels and chunks (small chunks here), one- and
    two-byte serial types (texts of up to 250 bytes): the pages are read, and agree."""
    monkeypatch.setattr(nsys_pages, "CHUNK_PAGES", 7)
    rng = random.Random(seed)
    path = _random_db(tmp_path / "r.sqlite", rng, rows=rng.choice([1, 300, 3000]), hostile=False,
                      page_size=rng.choice([512, 1024, 4096, 65536]))
    con = sqlite3.connect(path)
    db = open_db(path)
    assert db is not None
    got = nsys_page_reads.activity(db, con, KERNEL, kernels=True, memcpy=False)  # no fallback
    assert len(got["start"]) == con.execute(f"SELECT count(*) FROM {KERNEL}").fetchone()[0]
    nsys_page_reads.nvtx(db, con, "NVTX_EVENTS")
    _same(path)


@pytest.mark.parametrize("seed", range(12))
def test_random_hostile_integers_read_from_pages_as_with_sql(tmp_path, seed, monkeypatch):
    """NULL and integers on each side of every bound in any column: the pages are read and
    every check gives the SQL expression's value."""
    monkeypatch.setattr(nsys_pages, "CHUNK_PAGES", 3)
    rng = random.Random(100 + seed)
    path = _random_db(tmp_path / "h.sqlite", rng, rows=rng.choice([1, 40, 400]), hostile="ints")
    con = sqlite3.connect(path)
    db = open_db(path)
    assert db is not None
    nsys_page_reads.activity(db, con, KERNEL, kernels=True, memcpy=False)  # no fallback
    _same(path)


@pytest.mark.parametrize("seed", range(6))
def test_random_hostile_databases_read_as_with_sql(tmp_path, seed, monkeypatch):
    """Any type in any column (reals, text, blobs besides the integers): pages or SQL, the
    frames are the SQL reader's."""
    monkeypatch.setattr(nsys_pages, "CHUNK_PAGES", 3)
    rng = random.Random(200 + seed)
    _same(_random_db(tmp_path / "h.sqlite", rng, rows=rng.choice([1, 40, 400]), hostile=True))


def test_a_value_of_the_wrong_type_sends_the_table_to_sql(tmp_path):
    path = make_db(tmp_path / "r.sqlite")
    con = sqlite3.connect(path)
    db = open_db(path)
    assert db is not None
    read_table(db, con, KERNEL, ["start", "end"], _values_only)
    con.execute(f"UPDATE {KERNEL} SET end = 'late' WHERE rowid = 1")
    con.commit()
    with pytest.raises(PagesUnusable):
        read_table(db, con, KERNEL, ["start", "end"], _values_only)
    _same(path)


def test_overflow_short_records_and_deleted_rows(tmp_path):
    """Text spilling to overflow pages, rows written before ALTER TABLE ADD COLUMN, and rows
    deleted (free blocks in the pages): the same frames either way."""
    path = make_db(tmp_path / "r.sqlite")
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO NVTX_EVENTS (start, end, eventType, text) VALUES (?, ?, 59, ?)",
                    [(i, i + 10, "x" * (i * 997 % 9000)) for i in range(200)])
    con.execute("DELETE FROM NVTX_EVENTS WHERE start % 3 = 0")
    con.commit()
    db = open_db(path)
    assert db is not None
    with pytest.raises(PagesUnusable):  # texts of 9 KB overflow their page
        read_table(db, con, "NVTX_EVENTS", ["start"], _values_only, "text")
    _same(path)
    con.execute(f"ALTER TABLE {KERNEL} ADD COLUMN extra INT")
    con.execute(f"INSERT INTO {KERNEL} SELECT * FROM {KERNEL} LIMIT 1")
    con.execute(f"UPDATE {KERNEL} SET extra = 5 WHERE rowid = last_insert_rowid()")
    con.commit()
    with pytest.raises(PagesUnusable):  # the old rows lack the new column
        read_table(db, con, KERNEL, ["start", "extra"], _values_only)
    _same(path)


@pytest.mark.parametrize("pragma", ["journal_mode = WAL", "encoding = 'UTF-16le'"])
def test_wal_and_utf16_databases_are_read_with_sql(tmp_path, pragma):
    path = tmp_path / "r.sqlite"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA {pragma}")
    con.executescript(SCHEMA)
    con.execute(f"INSERT INTO {KERNEL} (start, end, deviceId, contextId, streamId, demangledName,"
                " shortName, registersPerThread, gridX, gridY, gridZ, blockX, blockY, blockZ,"
                " staticSharedMemory, dynamicSharedMemory, localMemoryPerThread,"
                " localMemoryTotal, gridId) VALUES (1, 5, 0, 0, 7, 0, 0, 8, 1, 1, 1, 32, 1, 1,"
                " 0, 0, 0, 0, 0)")
    con.execute("INSERT INTO StringIds VALUES (0, 'k')")
    con.commit()
    con.close()
    assert open_db(path) is None
    _same(path)
    assert int(load_nsys_sqlite(path).kernels["dur_ns"].sum()) == 4


def test_text_index_never_merges_a_collision():
    """Two different texts given the same hash (forced here): not one entry."""
    index = nsys_pages._TextIndex()
    index._mult[:] = 0  # every value hashes to its length's term: all 4-byte texts collide
    flat = np.frombuffer(b"abcdabce" + bytes(4096 + 32), dtype=np.uint8).copy()
    index.add(flat, np.array([0]), np.array([4]))
    with pytest.raises(PagesUnusable):
        index.add(flat, np.array([4]), np.array([4]))


@pytest.mark.parametrize("name", ["mock.sqlite", "saxpy-mpi-cuda_nsys_perlmutter0.sqlite",
                                  "mfu_2gpu_before.sqlite", "mfu_2gpu_after.sqlite",
                                  "perlmutter-cloverleaf-cuda.sqlite"])
def test_real_exports_read_from_pages_as_with_sql(name):
    path = external("nsys", name)
    db = open_db(path)
    assert db is not None
    con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    nsys_page_reads.activity(db, con, KERNEL, kernels=True, memcpy=False)  # no fallback
    _same(path)


def test_damaged_pages_end_in_a_result_or_one_line_error(tmp_path):
    """Random bytes overwritten in the pages of a valid export (page 1 kept): every read ends
    with frames or a WorkbenchError — never another exception, never unbounded (the reads run
    in a child limited to 2 GB of address space)."""
    import subprocess
    import sys

    rng = random.Random(11)
    clean = _random_db(tmp_path / "c.sqlite", rng, rows=600, hostile=False).read_bytes()
    for case in range(150):
        data = bytearray(clean)
        for _ in range(rng.choice([1, 4, 40])):
            at = rng.randrange(4096, len(data))
            data[at] = rng.randrange(256)
        (tmp_path / f"d{case}.sqlite").write_bytes(bytes(data))
    code = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from profilers.parsers.nsys_sqlite import load_nsys_sqlite
from workloads.errors import WorkbenchError
frames = errors = 0
for case in range(150):
    try:
        t = load_nsys_sqlite(Path(sys.argv[1]) / f"d{case}.sqlite", max_nvtx_ranges=10**9)
        assert len(t.kernels) <= 3 * 600, case  # kernels, copies, memsets
        frames += 1
    except WorkbenchError:
        errors += 1
print("OUTCOMES", frames, errors)
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-500:]
    frames, errors = map(int, out.stdout.split()[-2:])
    assert frames + errors == 150 and frames > 10
