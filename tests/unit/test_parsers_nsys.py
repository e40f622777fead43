"""nsys SQLite export parsing, on databases built here after the documented schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from profilers.parsers.nsys_sqlite import load_nsys_sqlite
from workloads.errors import WorkbenchError

SCHEMA = """
CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INT NOT NULL, end INT NOT NULL, deviceId INT NOT NULL,
  contextId INT NOT NULL, streamId INT NOT NULL, correlationId INT, globalPid INT, demangledName INT NOT NULL,
  shortName INT NOT NULL, mangledName INT, launchType INT, cacheConfig INT, registersPerThread INT NOT NULL,
  gridX INT NOT NULL, gridY INT NOT NULL, gridZ INT NOT NULL, blockX INT NOT NULL, blockY INT NOT NULL,
  blockZ INT NOT NULL, staticSharedMemory INT NOT NULL, dynamicSharedMemory INT NOT NULL,
  localMemoryPerThread INT NOT NULL, localMemoryTotal INT NOT NULL, gridId INT NOT NULL);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INT NOT NULL, end INT NOT NULL, deviceId INT NOT NULL,
  contextId INT NOT NULL, streamId INT NOT NULL, correlationId INT, globalPid INT, bytes INT NOT NULL,
  copyKind INT NOT NULL, srcKind INT, dstKind INT);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INT NOT NULL, end INT NOT NULL, deviceId INT NOT NULL,
  contextId INT NOT NULL, streamId INT NOT NULL, correlationId INT, globalPid INT, value INT NOT NULL,
  bytes INT NOT NULL);
CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INT NOT NULL, end INT NOT NULL, eventClass INT NOT NULL,
  globalTid INT, correlationId INT, nameId INT NOT NULL, returnValue INT NOT NULL, callchainId INT);
CREATE TABLE NVTX_EVENTS (start INT NOT NULL, end INT, eventType INT NOT NULL, rangeId INT, category INT,
  color INT, text TEXT, globalTid INT, endGlobalTid INT, textId INT, domainId INT, uint64Value INT,
  int64Value INT, doubleValue REAL, uint32Value INT, int32Value INT, floatValue REAL, jsonTextId INT,
  jsonText TEXT);
"""


def make_db(path: Path, kernel_names=("nvjet_sm90_tst_x", "[bold]flash_fwd_kernel[/]")) -> Path:
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    strings = ["cudaLaunchKernel", *kernel_names, "layer0"]
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", list(enumerate(strings)))
    for i, _ in enumerate(kernel_names):
        start = 1000 + 5000 * i
        con.execute(
            "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,0,1,7,?,1,?,?,0,0,0,168,132,1,1,384,1,1,"
            "0,213188,0,0,?)", (start, start + 1234 + i, 100 + i, i + 1, i + 1, i))
        con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,0,1,?,0,0,0)",
                    (start - 500, start - 400, 100 + i))
    con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (100, 600, 0, 1, 7, 99, 1, 4096, 8, 0, 0)")
    con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET VALUES (700, 750, 0, 1, 7, 98, 1, 0, 64)")
    con.execute("INSERT INTO NVTX_EVENTS (start, end, eventType, text) VALUES (0, 20000, 59, 'step')")
    con.execute("INSERT INTO NVTX_EVENTS (start, end, eventType, textId) VALUES (10, 900, 59, ?)",
                (len(strings) - 1,))
    con.commit()
    con.close()
    return path


def test_kernels_copies_runtime_and_nvtx(tmp_path):
    t = load_nsys_sqlite(make_db(tmp_path / "r.sqlite"))
    k = t.kernels
    assert k["name"].astype(str).tolist() == ["Memcpy DtoD", "Memset (Device)", "nvjet_sm90_tst_x",
                                             "[bold]flash_fwd_kernel[/]"]
    assert k["kind"].astype(str).tolist() == ["memcpy", "memset", "kernel", "kernel"]
    assert k["category"].astype(str).tolist() == ["memcpy", "memset", "gemm", "attention"]
    assert k["dur_ns"].tolist() == [500, 50, 1234, 1235]
    assert k["grid"][2] == (132, 1, 1) and k["block"][2] == (384, 1, 1)
    assert k["registers"][2] == 168 and k["shared_mem"][2] == 213188
    assert set(k["source"]) == {"nsys"}
    assert t.runtime["name"].astype(str).tolist() == ["cudaLaunchKernel"] * 2
    assert t.runtime["correlation"].tolist() == [100, 101]
    assert t.nvtx["name"].astype(str).tolist() == ["step", "layer0"]
    assert t.nvtx["end_ns"].tolist() == [20000, 900]


def test_not_sqlite_or_not_nsys(tmp_path):
    p = tmp_path / "x.sqlite"
    p.write_bytes(b"hello")
    with pytest.raises(WorkbenchError, match="not an SQLite"):
        load_nsys_sqlite(p)
    q = tmp_path / "other.sqlite"
    con = sqlite3.connect(q)
    con.execute("CREATE TABLE t (a INT)")
    con.commit()
    con.close()
    with pytest.raises(WorkbenchError, match="not an nsys export"):
        load_nsys_sqlite(q)


def test_truncated_database(tmp_path):
    p = make_db(tmp_path / "r.sqlite")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    try:
        t = load_nsys_sqlite(p)
    except WorkbenchError as err:
        assert str(p) in str(err)
    else:
        assert len(t.kernels) <= 4
