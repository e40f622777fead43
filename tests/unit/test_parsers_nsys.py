"""nsys SQLite export parsing, on databases built here after the documented schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
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


# ---------------------------------------------------------------- issue 16 (nsys half)

def _set(path: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(path)
    con.execute(sql, args)
    con.commit()
    con.close()


def test_wrong_types_are_null_and_counted_never_truncated(tmp_path):
    """A REAL start was truncated to an integer and text grids read as numbers nowhere; now any
    value that is not an integer is <NA> and the rows are counted in a note."""
    p = make_db(tmp_path / "r.sqlite")
    _set(p, 'UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET start = 1000.7 WHERE correlationId = 100')
    _set(p, "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET gridY = 'x', registersPerThread = 'nine' "
            "WHERE correlationId = 101")
    _set(p, "UPDATE CUPTI_ACTIVITY_KIND_MEMSET SET \"end\" = 'late'")
    t = load_nsys_sqlite(p)
    k = t.kernels.set_index("correlation")
    assert pd.isna(k.loc[100, "start_ns"]) and pd.isna(k.loc[100, "dur_ns"])
    assert k.loc[101, "grid"] is None and pd.isna(k.loc[101, "registers"])
    assert k.loc[101, "dur_ns"] == 1235 and k.loc[101, "block"] == (384, 1, 1)
    assert pd.isna(k.loc[98, "dur_ns"])  # the memset with a text end
    assert int(t.kernels["dur_ns"].sum()) == 500 + 1235  # only the valid durations
    assert any(n.startswith("2 of 4 GPU activities have no valid start/end")
               for n in t.meta["notes"])


def test_all_text_times_total_is_not_zero_activity(tmp_path):
    p = make_db(tmp_path / "r.sqlite")
    for table in ("KERNEL", "MEMCPY", "MEMSET"):
        _set(p, f"UPDATE CUPTI_ACTIVITY_KIND_{table} SET start = 'abc', \"end\" = 'def'")
    t = load_nsys_sqlite(p)
    assert t.kernels["dur_ns"].isna().all() and t.kernels["start_ns"].isna().all()
    assert any("4 of 4 GPU activities" in n for n in t.meta["notes"])


def test_gpu_name_sm_count_and_ceilings_from_target_info(tmp_path):
    """An nsys file named no device, so no roofline: TARGET_INFO_GPU now gives the name, SMs,
    clock and bandwidth, and the analysis finds the H100's ceilings."""
    from profilers.parsers.detect import load_artifact
    from workbench.api.pipeline.analysis import analyze_parsed

    p = make_db(tmp_path / "r.sqlite")
    _set(p, "CREATE TABLE TARGET_INFO_GPU (id INT, name TEXT, smCount INT, clockRate INT, "
            "memoryBandwidth INT, totalMemory INT, computeMajor INT, computeMinor INT)")
    _set(p, "INSERT INTO TARGET_INFO_GPU VALUES (0, 'NVIDIA H100 80GB HBM3', 132, 1980000000, "
            "3352320000000, 85520809984, 9, 0)")
    parsed = load_artifact(p)
    props = parsed.meta["device_properties"]
    assert props[0]["name"] == "NVIDIA H100 80GB HBM3" and props[0]["numSms"] == 132
    assert props[0]["clockRate_hz"] == 1_980_000_000
    analysis = analyze_parsed(parsed, home=tmp_path)
    assert analysis.device_name == "NVIDIA H100 80GB HBM3"
    assert analysis.ceilings is not None and analysis.ceilings.sm_count == 132


def test_correlation_ids_repeat_across_processes(tmp_path):
    """Two processes both number their launches from 1: a kernel must meet its own process's
    launch call (it met the first one with that id, often the other process's)."""
    p = tmp_path / "two.sqlite"
    con = sqlite3.connect(p)
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", [(0, "cudaLaunchKernel"), (1, "k")])
    pid_a, pid_b = (1 << 48) | (100 << 24), (1 << 48) | (200 << 24)
    for dev, gpid, launch in ((0, pid_a, 5_000), (1, pid_b, 1_000)):
        con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,?,1,7,1,?,1,1,0,0,0,32,"
                    "1,1,1,128,1,1,0,0,0,0,0)", (launch + 100, launch + 600, dev, gpid))
        con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,0,?,1,0,0,0)",
                    (launch, launch + 50, gpid + 7))
    con.commit()
    con.close()
    t = load_nsys_sqlite(p)
    launch_start = dict(zip(t.runtime["correlation"], t.runtime["start_ns"], strict=True))
    for corr, start in zip(t.kernels["correlation"], t.kernels["start_ns"], strict=True):
        assert launch_start[corr] == start - 100  # its own launch, 100 ns before it ran
    assert t.kernels["correlation"].nunique() == 2


def test_nvtx_bound_is_a_note(tmp_path):
    t = load_nsys_sqlite(make_db(tmp_path / "r.sqlite"), max_nvtx_ranges=1)
    assert len(t.nvtx) == 0
    assert any("2 NVTX events, more than the 1" in n and "AIPERF_NVTX_MAX_RANGES" in n
               for n in t.meta["notes"])


def test_nvtx_bound_is_the_input_limit_on_events(tmp_path, monkeypatch):
    """All NVTX events are read up to --max-events (a 1M-range emit_nvtx export gets its
    regions by default, as the full analysis); below it the note says how to lift it, and
    --no-limits reads any number."""
    from profilers.parsers._io import InputLimits, limited_input

    monkeypatch.delenv("AIPERF_NVTX_MAX_RANGES", raising=False)
    path = make_db(tmp_path / "r.sqlite")
    assert len(load_nsys_sqlite(path).nvtx) == 2
    with limited_input(InputLimits(max_events=1)):
        t = load_nsys_sqlite(path)
    assert len(t.nvtx) == 0
    assert any("more than the 1 read" in n and "--max-events 2" in n for n in t.meta["notes"])
    with limited_input(InputLimits(max_events=None)):
        assert len(load_nsys_sqlite(path).nvtx) == 2
    monkeypatch.setenv("AIPERF_NVTX_MAX_RANGES", "1")
    assert len(load_nsys_sqlite(path).nvtx) == 0


def write_nsys_json(sqlite_path: Path, out: Path, separate_strings: bool = False) -> Path:
    """The rows of an nsys SQLite export written in the layout of ``nsys export --type json``
    (NVIDIA's "JSON and Text Format Description": one message per line, 64-bit numbers as
    strings, names as string ids, the string table as {"data": [...]} or, with
    --separate-strings, {"type":"String",...} lines). No public JSON export was found to commit;
    this writes the same activities a real export would hold."""
    con = sqlite3.connect(sqlite_path)
    lines = []
    kernel_fields = ("demangledName", "shortName", "gridX", "gridY", "gridZ", "blockX",
                     "blockY", "blockZ", "registersPerThread", "staticSharedMemory",
                     "dynamicSharedMemory")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for row in con.execute('SELECT start, "end", correlationId, deviceId, streamId, globalPid, '
                           + ", ".join(kernel_fields) + " FROM CUPTI_ACTIVITY_KIND_KERNEL"):
        lines.append({"Type": 79, "CudaEvent": {
            "startNs": str(row[0]), "endNs": str(row[1]), "correlationId": row[2],
            "deviceId": row[3], "streamId": str(row[4]), "globalPid": str(row[5]),
            "kernel": {f: str(v) for f, v in zip(kernel_fields, row[6:], strict=True)}}})
    for s, e, corr, dev, stream, pid, kind in con.execute(
            'SELECT start, "end", correlationId, deviceId, streamId, globalPid, copyKind '
            "FROM CUPTI_ACTIVITY_KIND_MEMCPY") if "CUPTI_ACTIVITY_KIND_MEMCPY" in tables else ():
        lines.append({"Type": 80, "CudaEvent": {
            "startNs": str(s), "endNs": str(e), "correlationId": corr, "deviceId": dev,
            "streamId": str(stream), "globalPid": str(pid),
            "memcpy": {"copyKind": str(kind), "sizebytes": "0"}}})
    for s, e, corr, dev, stream, pid in con.execute(
            'SELECT start, "end", correlationId, deviceId, streamId, globalPid FROM '
            "CUPTI_ACTIVITY_KIND_MEMSET") if "CUPTI_ACTIVITY_KIND_MEMSET" in tables else ():
        lines.append({"Type": 81, "CudaEvent": {
            "startNs": str(s), "endNs": str(e), "correlationId": corr, "deviceId": dev,
            "streamId": str(stream), "globalPid": str(pid), "memset": {"sizebytes": "0"}}})
    for s, e, corr, name, tid in con.execute(
            'SELECT start, "end", correlationId, nameId, globalTid FROM '
            "CUPTI_ACTIVITY_KIND_RUNTIME"):
        lines.append({"Type": 48, "TraceProcessEvent": {
            "startNs": str(s), "endNs": str(e), "correlationId": corr, "name": str(name),
            "globalTid": str(tid or 0)}})
    for s, e, etype, text, tid, text_id in con.execute(
            'SELECT start, "end", eventType, text, globalTid, textId FROM NVTX_EVENTS'):
        event = {"Type": etype, "Timestamp": str(s), "GlobalTid": str(tid or 0)}
        if e is not None:
            event["EndTimestamp"] = str(e)
        if text is not None:
            event["Text"] = text
        if text_id is not None:
            event["TextId"] = str(text_id)
        lines.append({"Type": etype, "NvtxEvent": event})
    strings = dict(con.execute("SELECT id, value FROM StringIds"))
    if separate_strings:
        lines += [{"type": "String", "id": str(i), "value": v} for i, v in strings.items()]
    else:
        table = [""] * (max(strings, default=-1) + 1)
        for i, v in strings.items():
            table[i] = v
        lines.append({"data": table})
    con.close()
    out.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines))
    return out


@pytest.mark.parametrize("separate", [False, True])
def test_nsys_json_export_reads_like_its_sqlite(tmp_path, separate):
    """`nsys export --type json` read as 'holds no GPU kernels'; now the same KernelTable,
    runtime calls and NVTX ranges as the SQLite export of the same report."""
    from profilers.parsers.detect import detect_format, load_artifact

    db = make_db(tmp_path / "r.sqlite")
    js = write_nsys_json(db, tmp_path / "r.json", separate_strings=separate)
    assert detect_format(js) == "nsys_json"
    a, b = load_artifact(js), load_artifact(db)
    cols = ["name", "kind", "category", "start_ns", "dur_ns", "device", "stream",
            "correlation", "grid", "block", "registers", "shared_mem"]
    assert a.kernels[cols].astype(object).equals(b.kernels[cols].astype(object))
    rt = ["name", "start_ns", "dur_ns", "correlation"]
    assert a.runtime[rt].astype(object).equals(b.runtime[rt].astype(object))
    assert a.annotations["name"].astype(str).tolist() == ["step", "layer0"]


def test_nsys_json_bad_lines_counted(tmp_path):
    from profilers.parsers.nsys_json import load_nsys_json

    js = write_nsys_json(make_db(tmp_path / "r.sqlite"), tmp_path / "r.json")
    js.write_text(js.read_text().replace('"startNs":"1000"', '"startNs":[1]', 1) + "{oops\n")
    t = load_nsys_json(js)
    assert len(t.kernels) == 3 and any("2 lines" in n for n in t.meta["notes"])


def test_nsys_rep_without_nsys_is_one_line_with_the_export_command(tmp_path, monkeypatch, capsys):
    """A .nsys-rep was 'unknown artifact format' with no way forward."""
    import profilers.base
    from workbench.cli import main

    rep = tmp_path / "run1.nsys-rep"
    rep.write_bytes(b"\x00\x01binary qdstrm-derived report\x00" * 10)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("AIPERF_NSYS", raising=False)
    monkeypatch.setattr(profilers.base, "_SEARCH", {})
    assert main(["--home", str(tmp_path / "h"), "analyze", str(rep)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nsys is not on PATH" in err
    assert f"nsys export --type sqlite -o {tmp_path / 'run1.sqlite'} {rep}" in err


STAND_IN_NSYS = """#!{python}
# A stand-in for `nsys export --type sqlite --output OUT REPORT` (tests only): it writes the
# SQLite export it is asked for by copying the one named in $NSYS_STAND_IN_SOURCE, and counts
# its calls in $NSYS_STAND_IN_CALLS.
import os, shutil, sys
args = sys.argv[1:]
assert args[:3] == ["export", "--type", "sqlite"], args
out = args[args.index("--output") + 1]
assert os.path.isfile(args[-1]), args[-1]
shutil.copyfile(os.environ["NSYS_STAND_IN_SOURCE"], out)
with open(os.environ["NSYS_STAND_IN_CALLS"], "a") as fh:
    fh.write(" ".join(args) + "\\n")
"""


def test_nsys_rep_with_nsys_exports_once_and_analyzes(tmp_path, monkeypatch, capsys):
    import sys

    import profilers.base
    import profilers.nsys
    from workbench.cli import main

    db = make_db(tmp_path / "src.sqlite")
    rep = tmp_path / "run1.nsys-rep"
    rep.write_bytes(b"report bytes only nsys can read")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    nsys = bindir / "nsys"
    nsys.write_text(STAND_IN_NSYS.format(python=sys.executable))
    nsys.chmod(0o755)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("AIPERF_NSYS", raising=False)
    monkeypatch.setattr(profilers.base, "_SEARCH", {})
    monkeypatch.setenv("NSYS_STAND_IN_SOURCE", str(db))
    monkeypatch.setenv("NSYS_STAND_IN_CALLS", str(calls))
    monkeypatch.setattr(profilers.nsys, "export_cache_dir", lambda: tmp_path / "cache")
    for _ in range(2):
        assert main(["--home", str(tmp_path / "h"), "analyze", str(rep)]) == 0
        out = capsys.readouterr().out
        assert "4 GPU activities" in out and "nvjet_sm90_tst_x" in out
    assert len(calls.read_text().splitlines()) == 1  # the second analyze used the cache
    assert str(rep) in calls.read_text()


def test_two_gpus_of_one_process_get_overlap_per_device(tmp_path):
    """One process, two GPUs, an NCCL kernel on each: per-device comm / compute / overlap (the
    multi-rank view needed ranks, which an nsys file does not have)."""
    from analyzers.overlap import distributed_analysis

    p = make_db(tmp_path / "r.sqlite", kernel_names=("nvjet_sm90_tst_x", "ncclDevKernel_AllReduce",
                                                     "nvjet_sm90_tst_x", "ncclDevKernel_AllReduce"))
    _set(p, "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET deviceId = 1 WHERE correlationId >= 102")
    # device 1: the all-reduce (16000..17237) runs beside a GEMM (11000..) stretched to 16500
    _set(p, 'UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = 16500 WHERE correlationId = 102')
    d = distributed_analysis(load_nsys_sqlite(p).kernels, None)
    assert d is not None and d.unit == "device"
    rows = {r.rank: r for r in d.per_rank.itertuples()}
    assert (rows[0].comm_ns, rows[0].overlap_ns) == (1235, 0)
    assert (rows[1].comm_ns, rows[1].overlap_ns, rows[1].compute_ns) == (1237, 500, 5500)


def test_nsys_rep_export_failure_is_one_line(tmp_path, monkeypatch, capsys):
    import profilers.base
    import profilers.nsys
    from workbench.cli import main

    rep = tmp_path / "bad.qdrep"
    rep.write_bytes(b"not a report")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    nsys = bindir / "nsys"  # a stand-in that fails the way nsys does on a damaged report
    nsys.write_text("#!/bin/sh\necho 'Importing...' ; echo 'Error: file is corrupted' >&2; exit 1\n")
    nsys.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("AIPERF_NSYS", raising=False)
    monkeypatch.setattr(profilers.base, "_SEARCH", {})
    monkeypatch.setattr(profilers.nsys, "export_cache_dir", lambda: tmp_path / "cache")
    assert main(["--home", str(tmp_path / "h"), "analyze", str(rep)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nsys export failed (exit 1): Error: file is corrupted" in err
    assert not list((tmp_path / "cache").glob("*.sqlite"))  # no half-written export kept


def test_sparse_rowids_read_in_bounded_memory(tmp_path):
    """A valid export whose one kernel row sits at rowid 2**62: the SQL reader chunked the
    rowid range 0..2**62 (3.5e13 chunks: memory without bound); now the chunks follow the
    rows. Run in a child limited to 2 GB of address space, both readers."""
    import subprocess
    import sys

    path = make_db(tmp_path / "r.sqlite")
    con = sqlite3.connect(path)
    con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL (rowid, start, end, deviceId, contextId,"
                " streamId, correlationId, globalPid, demangledName, shortName,"
                " registersPerThread, gridX, gridY, gridZ, blockX, blockY, blockZ,"
                " staticSharedMemory, dynamicSharedMemory, localMemoryPerThread,"
                " localMemoryTotal, gridId) VALUES (?, 50000, 50100, 0, 1, 7, 300, 1, 1, 1, 32,"
                " 1, 1, 1, 32, 1, 1, 0, 0, 0, 0, 9)", (2**62,))
    con.commit()
    con.close()
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
            "from profilers.parsers.nsys_sqlite import load_nsys_sqlite; "
            "a = load_nsys_sqlite(sys.argv[1], page_reader=False).kernels; "
            "b = load_nsys_sqlite(sys.argv[1]).kernels; "
            "print(len(a), int(a['dur_ns'].sum()), len(b), int(b['dur_ns'].sum()))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["5", str(500 + 50 + 1234 + 1235 + 100)] * 2, out.stderr[-300:]
