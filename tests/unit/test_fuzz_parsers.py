"""Fuzz the parsers with generated artifacts (fixed seeds, plain random; >= 5,000 cases).

Every case must either raise WorkbenchError or return a table; when the generated input is
well-formed, the result must also be right (kernel totals, names kept literally).
"""

from __future__ import annotations

import gzip
import json
import math
import random
import sqlite3
import time
from pathlib import Path

import pytest

from profilers.parsers._ncu_common import parse_dims
from profilers.parsers.categories import categorize
from profilers.parsers.detect import load_artifact
from profilers.parsers.kineto import load_kineto
from profilers.parsers.ncu_csv import load_ncu_csv
from profilers.parsers.nsys_sqlite import load_nsys_sqlite
from workloads.errors import WorkbenchError

NAMES = ["nvjet_sm90_tst_x", "[bold]k[/]", "[/]", "[red]flash_fwd[/red]", "", "ünïcødé ✓",
         "void at::native::vectorized_elementwise_kernel<4>", "a\"quoted\"", "tab\there",
         "x" * 300, "Memcpy DtoD", "ncclDevKernel_AllReduce"]
CATS = ["kernel", "kernel", "gpu_memcpy", "gpu_memset", "cpu_op", "cuda_runtime", "cuda_driver",
        "ac2g", "python_function", None, 7]
BAD = [None, "12", "abc", [], {}, True, 10**30, -1, 1e308, float("nan"), -(10**20)]


def _check(fn, path: Path, case: str):
    try:
        return fn(path)
    except WorkbenchError as err:
        assert "\n" not in str(err), case
        return None
    except Exception as exc:  # noqa: BLE001 - the point of the fuzz
        pytest.fail(f"{case}: {type(exc).__name__}: {exc}")


def _kineto_case(rng: random.Random) -> tuple[bytes, float | None, set[str]]:
    """(file bytes, expected kernel total in ns or None when not checkable, kernel names)."""
    events, texts = [], []
    expected, names, clean = 0.0, set(), True
    for i in range(rng.randint(0, 12)):
        cat = rng.choice(CATS)
        e = {"ph": "X", "cat": cat, "name": rng.choice(NAMES), "pid": rng.choice([0, "Spans"]),
             "ts": round(rng.uniform(0, 5e12), 3), "dur": round(rng.uniform(0, 2e3), 3),
             "args": {"External id": i, "correlation": i, "stream": 7, "grid": [1, 2, 3]}}
        if cat == "cpu_op":
            e["args"]["Input Dims"] = [[rng.randint(1, 9)], []]
            e["args"]["flops"] = rng.choice([1e9, 10**25, "x"])
        if rng.random() < 0.25:  # wrong types / huge numbers / missing fields
            key = rng.choice(["ts", "dur", "name", "args", "cat"])
            if rng.random() < 0.8:
                e[key] = rng.choice(BAD)
            else:
                e.pop(key, None)
            if cat == "kernel" or key == "cat":
                clean = False
        if rng.random() < 0.1 and isinstance(e.get("args"), dict):
            e["args"][rng.choice(["grid", "stream", "External id", "registers per thread"])] = rng.choice(BAD)
        if (cat == "kernel" and isinstance(e.get("dur"), float) and math.isfinite(e["dur"])
                and abs(e["dur"]) < 1e12 and isinstance(e.get("name"), str)):
            expected += round(e["dur"] * 1000)
            names.add(e["name"])
        events.append(e)
        text = json.dumps(e, allow_nan=True)
        if rng.random() < 0.1:  # duplicate key (same value: both readings agree)
            text = '{"ph": "X", ' + text[1:]
        texts.append(text)
    body = "[" + ",\n".join(texts) + "]"
    doc = body if rng.random() < 0.1 else '{"schemaVersion": 1, "traceEvents": ' + body + "}"
    data = doc.encode()
    if "NaN" in doc or "Infinity" in doc:
        clean = False
    r = rng.random()
    if r < 0.15:
        data = data[: rng.randint(0, len(data))]
        clean = False
    elif r < 0.25:
        pos = rng.randint(0, len(data))
        data = data[:pos] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0x00])]) + data[pos:]
        clean = False
    if rng.random() < 0.2:
        data = gzip.compress(data)
        if rng.random() < 0.2:
            data = data[: rng.randint(0, len(data))]
            clean = False
    return data, (expected if clean else None), names


def test_fuzz_kineto(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "t.json"
    checked = 0
    for case in range(2500):
        data, expected, names = _kineto_case(rng)
        path.write_bytes(data)
        trace = _check(load_kineto, path, f"kineto case {case}")
        if trace is None:
            continue
        k = trace.kernels
        assert len(k) == len(k["name"]) and set(k["source"].astype(str)) <= {"torch"}
        if expected is not None:
            assert abs(trace.kernel_total_ns() - expected) <= len(k) + 1, f"case {case}"
            assert names <= set(k["name"].astype(str)), f"case {case}"
            checked += 1
    assert checked > 500


HEADER = ["ID", "Process ID", "Kernel Name", "Stream", "Block Size", "Grid Size",
          "gpu__time_duration.sum", "dram__bytes.sum.per_second", "dram__bytes_read.sum",
          "smsp__cycles_elapsed.avg.per_second",
          "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum.per_cycle_elapsed",
          "launch__registers_per_thread"]
UNITS = ["", "", "", "", "", "", "ns", "byte/s", "Mbyte", "hz", "inst/cycle", "register/thread"]
VALUES = ["1,234", "0", "n/a", "", "1e400", "-5", "(1, 2, 3)", "(x)", "abc", "9" * 40, "3.5",
          "[bold]", '"q"']


def _q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def test_fuzz_ncu_csv(tmp_path):
    rng = random.Random(99)
    path = tmp_path / "ncu.csv"
    checked = 0
    for case in range(1800):
        cols = [c for c in HEADER if rng.random() < 0.8] or ["ID"]
        if rng.random() < 0.9 and "ID" in cols:
            cols.remove("ID")
            cols.insert(0, "ID")
        lines = [rng.choice(["==PROF== Connected to process 1", "==WARNING== clocks", ""])
                 for _ in range(rng.randint(0, 3))]
        lines.append(",".join(_q(c) for c in cols))
        if rng.random() < 0.8:
            lines.append(",".join(_q(UNITS[HEADER.index(c)]) for c in cols))
        durs, clean = [], True
        for i in range(rng.randint(0, 5)):
            row = []
            for c in cols:
                if c == "ID":
                    v = str(i)
                elif c == "Kernel Name":
                    v = rng.choice(NAMES)
                elif c == "gpu__time_duration.sum" and rng.random() < 0.7:
                    d = rng.randint(1, 10**6)
                    durs.append(d)
                    v = f"{d:,}"
                else:
                    v = rng.choice(VALUES)
                    if c == "gpu__time_duration.sum":
                        clean = False
                row.append(_q(v) if rng.random() < 0.9 else v.replace(",", ""))
            if rng.random() < 0.05:
                row = row[: rng.randint(0, len(row))]
                clean = False
            lines.append(",".join(row))
        data = "\n".join(lines).encode()
        if rng.random() < 0.1:
            data = data[: rng.randint(0, len(data))]
            clean = False
        if rng.random() < 0.05:
            data += b"\xff\xfe"
        path.write_bytes(data)
        res = _check(load_ncu_csv, path, f"ncu case {case}")
        if res is None:
            continue
        assert len(res.kernels) == len(res.metrics)
        if clean and "gpu__time_duration.sum" in cols and durs and len(durs) == len(res.kernels):
            if res.kernels["dur_ns"].notna().all():
                assert int(res.kernels["dur_ns"].sum()) == sum(durs), f"case {case}"
                checked += 1
    assert checked > 50


def _nsys_db(path: Path, rng: random.Random) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")  # no fsyncs: 400 small databases
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT)")
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", list(enumerate(NAMES)))
    cols = [c for c in ["start", "end", "deviceId", "streamId", "correlationId", "gridX", "gridY",
                        "gridZ", "blockX", "blockY", "blockZ", "registersPerThread",
                        "staticSharedMemory", "dynamicSharedMemory", "demangledName", "shortName"]
            if rng.random() < 0.85]
    if cols:
        con.execute(f"CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL ({', '.join(cols)})")
        for _ in range(rng.randint(0, 6)):
            vals = [rng.choice([rng.randint(0, 10**6), None, "text", 2**63 - 1, 1.5, -3,
                                rng.randint(0, len(NAMES) + 2)]) for _ in cols]
            con.execute(f"INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES ({','.join('?' * len(cols))})", vals)
    if rng.random() < 0.5:
        con.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start, end, nameId, correlationId)")
        con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?, ?, ?, ?)",
                    (rng.choice([1, None, "x"]), 5, rng.choice([0, 99, None]), 1))
    if rng.random() < 0.5:
        con.execute("CREATE TABLE NVTX_EVENTS (start, end, text, textId)")
        con.execute("INSERT INTO NVTX_EVENTS VALUES (?, ?, ?, ?)",
                    (1, rng.choice([None, 9]), rng.choice([None, "[b]x[/b]"]), rng.choice([None, 1, 77])))
    con.commit()
    con.close()
    if rng.random() < 0.2:
        data = path.read_bytes()
        path.write_bytes(data[: rng.randint(0, len(data))])


def test_fuzz_nsys_sqlite(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "n.sqlite"
    for case in range(400):
        _nsys_db(path, rng)
        res = _check(load_nsys_sqlite, path, f"nsys case {case}")
        if res is not None:
            assert len(res.kernels) <= 6
            assert all(isinstance(n, str) for n in res.kernels["name"])


def test_fuzz_detect_random_bytes(tmp_path, h100_fixtures):
    rng = random.Random(5)
    path = tmp_path / "blob"
    seeds = [(h100_fixtures / n).read_bytes()[:4000] for n in
             ("torch_trace.json", "ncu_raw.csv", "mm_full.ncu-rep")]
    seeds += [b"SQLite format 3\x00", b"\x1f\x8b", b'{"traceEvents": [', b'"ID","Process ID"']
    for case in range(500):
        base = rng.choice(seeds)
        cut = base[: rng.randint(0, len(base))]
        data = cut + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        path.write_bytes(data)
        res = _check(load_artifact, path, f"detect case {case}")
        if res is not None:
            assert not math.isnan(float(len(res.kernels)))


# ---------------------------------------------------------------- bounded work on hostile input
# Time is measured as this process's CPU time (not wall time), and each input is sized so that
# the old quadratic/cubic code takes minutes where linear code takes well under a second: a busy
# machine cannot flip these.


def _cpu_seconds(fn, *args):
    started = time.process_time()
    result = fn(*args)
    return result, time.process_time() - started


@pytest.mark.parametrize(("unit", "category"), [
    ("softmax_warp", "reduction"), ("triton_tem_fused_", "other"), ("cudnn_", "other"),
    ("softmax_warp_attn_", "attention"), ("triton_tem_fused_attention", "attention")])
def test_categorize_is_linear_in_the_name_length(unit, category):
    """`softmax_?warp.*attn` and `triton_tem_fused_.*attention` backtracked quadratically: a
    96 KB name took 1.7 s, this 600 KB+ one over a minute. Results are unchanged."""
    name = unit * 50_000
    got, seconds = _cpu_seconds(categorize, name)
    assert got == category
    assert seconds < 5.0


def test_ncu_dims_cell_is_bounded(tmp_path):
    """A Grid Size cell of "1,1,1,...": the dims regex backtracked cubically (1.6 KB: 7 s)."""
    assert parse_dims("1," * 2000 + "x") is None
    _, seconds = _cpu_seconds(parse_dims, "1," * 100_000 + "x")
    assert seconds < 1.0
    path = tmp_path / "ncu.csv"
    path.write_text('"ID","Process ID","Kernel Name","Grid Size","gpu__time_duration.sum"\n'
                    '"","","","","nsecond"\n'
                    f'"0","1","k","({"1," * 5000}x)","1,000"\n')
    res, seconds = _cpu_seconds(load_ncu_csv, path)
    assert res.kernels["grid"].tolist() == [None] and int(res.kernels["dur_ns"].sum()) == 1000
    assert seconds < 5.0
