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


LONG_METRICS = [("GPU Speed Of Light Throughput", "Duration"),
                ("Command line profiler metrics", "gpu__time_duration.sum"),
                ("Launch Statistics", "Registers Per Thread"), ("Memory Workload Analysis",
                                                                "Memory Throughput"),
                ("SpeedOfLight", ""), ("Occupancy", "Achieved Occupancy")]
TIME_UNITS = {"nsecond": 1, "ns": 1, "usecond": 1_000, "us": 1_000, "msecond": 10**6, "ms": 10**6}


def test_fuzz_ncu_csv_default_layout(tmp_path):
    """ncu's default layout (one row per metric per launch): random units, values, rule rows,
    missing columns; clean inputs must give each launch's duration exactly."""
    rng = random.Random(2024)
    path = tmp_path / "ncu.csv"
    header = ["ID", "Process ID", "Kernel Name", "Stream", "Block Size", "Grid Size",
              "Section Name", "Metric Name", "Metric Unit", "Metric Value", "Rule Name"]
    checked = 0
    for case in range(600):
        cols = [c for c in header if c in ("ID", "Metric Name", "Metric Value")
                or rng.random() < 0.85]
        lines = [",".join(_q(c) for c in cols)]
        expected: dict[int, int] = {}
        clean = "Metric Unit" in cols
        for launch in range(rng.randint(0, 4)):
            kernel = rng.choice(NAMES)
            for section, metric in rng.sample(LONG_METRICS, rng.randint(1, len(LONG_METRICS))):
                unit, value = rng.choice(["%", "", "Gbyte/second", "register/thread"]), rng.choice(VALUES)
                if metric in ("Duration", "gpu__time_duration.sum"):
                    if launch in expected or rng.random() < 0.2:
                        clean = False  # a second duration row, or a garbage one
                    unit = rng.choice(list(TIME_UNITS))
                    whole = rng.randint(1, 10**6)
                    value = f"{whole:,}"
                    expected[launch] = expected.get(launch, 0) + whole * TIME_UNITS[unit]
                cell = {"ID": str(launch), "Process ID": "1", "Kernel Name": kernel,
                        "Stream": "7", "Block Size": "(128, 1, 1)", "Grid Size": rng.choice(VALUES),
                        "Section Name": section, "Metric Name": metric, "Metric Unit": unit,
                        "Metric Value": value, "Rule Name": ""}
                lines.append(",".join(_q(cell[c]) for c in cols))
        if rng.random() < 0.1:
            lines.append(",".join(_q(v) for v in rng.sample(VALUES, 3)))
            clean = False
        data = "\n".join(lines).encode()
        if rng.random() < 0.1:
            data = data[: rng.randint(0, len(data))]
            clean = False
        path.write_bytes(data)
        res = _check(load_ncu_csv, path, f"ncu long case {case}")
        if res is None:
            continue
        assert len(res.kernels) == len(res.metrics)
        if clean and expected:
            durs = res.kernels["dur_ns"]
            if len(durs) == len(expected) and durs.notna().all():
                assert int(durs.sum()) == sum(expected.values()), f"case {case}"
                checked += 1
    assert checked > 20


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


def _trace(events: list) -> str:
    return json.dumps({"traceEvents": events})


def test_invalid_durations_are_counted_not_summed(tmp_path):
    """A negative duration printed "-99 us total, idle 1000%"; a duration given as text was
    converted ("5" -> 5 us); both now stay out of every sum and are counted in the notes."""
    from workbench.api.pipeline.analysis import analyze_parsed

    events = [
        {"ph": "X", "cat": "kernel", "name": "good", "ts": 0, "dur": 10, "args": {"device": 0}},
        ["not", "an", "event"],
        {"ph": "X", "cat": "kernel", "name": "negative", "ts": 1000, "dur": -99},
        {"ph": "X", "cat": "kernel", "name": "text", "ts": 20, "dur": "5"},
        {"ph": "X", "cat": "kernel", "name": "huge", "ts": 30, "dur": 1e300},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": -3},
        {"ph": "X", "cat": "kernel", "name": "bad_args", "ts": 40, "dur": 2,
         "args": {"device": 0, "grid": "x", "correlation": 7}},
    ]
    path = tmp_path / "t.json"
    path.write_text(_trace(events))
    parsed = load_artifact(path)
    k = parsed.kernels
    assert sorted(k["name"].astype(str)) == ["bad_args", "good"]
    assert int(k["dur_ns"].sum()) == 12_000
    assert k.loc[k["name"] == "bad_args", "correlation"].tolist() == [7]  # the rest of its args
    assert parsed.meta["invalid_events"] == {
        "skipped": 2, "args_dropped": 1, "kernels_bad_duration": 2, "ops_bad_duration": 1,
        "runtime_bad_duration": 0}
    analysis = analyze_parsed(parsed)
    notes = " | ".join(analysis.notes)
    assert "2 trace events skipped" in notes and "1 trace events read without their args" in notes
    assert "2 GPU activities, 1 CPU ops" in notes
    t = analysis.temporal
    assert analysis.kernel_total_ns == 12_000 and t.busy_ns <= t.window_ns
    assert 0 <= t.idle_share <= 1


@pytest.mark.parametrize("where", ["args", "event", "header", "tail"])
def test_deep_nesting_is_a_one_line_error(tmp_path, where):
    """JSON nested 1,000 deep gave a RecursionError traceback (exit 1). How deep msgspec goes
    depends on the Python (3.11: ~1,000 levels; 3.13 guards the C stack and decodes 5,000):
    200,000 levels are past the limit on every one, and must end in one line."""
    deep = "[" * 200_000 + "]" * 200_000
    good = '{"ph": "X", "cat": "kernel", "name": "k", "ts": 1, "dur": 2}'
    text = {
        "args": '{"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "ts": 1, "dur": 2, '
                f'"args": {{"x": {deep}}}}}]}}',
        "event": f'{{"traceEvents": [{good}, {deep}]}}',
        "header": f'{{"x": {deep}, "traceEvents": [{good}]}}',
        "tail": f'{{"traceEvents": [{good}], "x": {deep}}}',
    }[where]
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(WorkbenchError) as err:
        load_kineto(path)
    assert "\n" not in str(err.value)
    from workbench.cli import main

    assert main(["analyze", str(path)]) == 2


def test_end_of_events_is_found_in_bounded_work(tmp_path):
    """The array's end was looked for by decoding from every '}' ']' forward, each try up to
    8 MB: a tail of 60k events each holding one took hours. Now the last few are tried."""
    event = '{"ph": "X", "cat": "cpu_op", "name": "a", "ts": 1, "dur": 1, "args": {"x": [{}]}}'
    body = ",".join([event] * 60_000)
    path = tmp_path / "t.json"
    path.write_text('{"traceEvents": [' + body)  # truncated: the array never closes
    started = time.process_time()
    with pytest.raises(WorkbenchError):
        load_kineto(path)
    assert time.process_time() - started < 10
    path.write_text('{"traceEvents": [' + body + '], "traceName": "x", "y": [{}]}')
    trace, seconds = _cpu_seconds(load_kineto, path)
    assert len(trace.ops) == 60_000 and trace.meta["traceName"] == "x"
    assert seconds < 10


def test_input_limits_stop_a_gzip_bomb_early(tmp_path):
    """A small gzip that inflates to millions of events reached 11.4 GB of memory: the reader
    now stops at the byte or event limit with a one-line error naming the flag that lifts it."""
    from profilers.parsers._io import InputLimits, input_limits, limited_input
    from profilers.parsers._trace_stream import READ_BLOCK

    assert input_limits() == InputLimits(2 << 30, 5_000_000)  # the defaults the README states
    event = b'{"ph":"X","cat":"kernel","name":"k","ts":1,"dur":1},'
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(gzip.compress(b'{"traceEvents":[' + event * 400_000 + event[:-1] + b"]}"))
    assert path.stat().st_size < 200_000
    with limited_input(InputLimits(max_bytes=1 << 20, max_events=None)):
        with pytest.raises(WorkbenchError, match="--max-bytes") as err:
            load_kineto(path)
    assert "--no-limits" in str(err.value) and "\n" not in str(err.value)
    with limited_input(InputLimits(max_bytes=None, max_events=100_000)):
        with pytest.raises(WorkbenchError, match="--max-events"):
            load_kineto(path)
        stream_bytes = []
        from profilers.parsers import _kineto_columns

        real = _kineto_columns.TraceStream

        class Counting(real):  # type: ignore[misc, valid-type]
            def close(self):
                stream_bytes.append(self.bytes_read)
                super().close()

        _kineto_columns.TraceStream = Counting
        try:
            with pytest.raises(WorkbenchError):
                load_kineto(path)
        finally:
            _kineto_columns.TraceStream = real
        # Stopped within a few chunks of the limit, not after inflating the whole file.
        assert stream_bytes and stream_bytes[0] < 100_000 * len(event) + 3 * READ_BLOCK
    with limited_input(InputLimits(None, None)):
        assert len(load_kineto(path).kernels) == 400_001


def test_cli_limit_flags(tmp_path):
    from workbench.cli import main

    event = {"ph": "X", "cat": "kernel", "name": "k", "ts": 1, "dur": 1}
    path = tmp_path / "t.json"
    path.write_text(_trace([event] * 50))
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "analyze", "--max-events", "10", str(path)]) == 2
    assert main([*home, "analyze", "--max-bytes", "1K", str(path)]) == 2
    assert main([*home, "analyze", "--max-events", "10", "--no-limits", str(path)]) == 0
    assert main([*home, "analyze", str(path)]) == 0


def test_sqlite_text_durations_give_an_unknown_total(tmp_path):
    """An nsys SQLite whose start/end are text printed "0 ns total": missing must be null."""
    from workbench.api.pipeline.analysis import analyze_paths

    path = tmp_path / "text.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO StringIds VALUES (1, 'nvjet_k')")
    con.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, streamId, "
                "correlationId, demangledName, shortName)")
    con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES ('a', 'b', 0, 7, 1, 1, 1)")
    con.commit()
    con.close()
    _, analysis = analyze_paths([path])
    assert analysis.kernel_count == 1 and analysis.kernel_total_ns is None
    assert analysis.kind_totals() == {} and any("unknown, not 0" in n for n in analysis.notes)


def test_advice_attention_rule_is_linear_in_the_name_length():
    """The advice's flash-attention rule had `cudnn.*sdpa` / `triton_tem_fused.*attention`:
    a 96 KB kernel name took 11 s (quadratic), this 600 KB one minutes. Same matches."""
    from analyzers.advice.rules_kernels import FLASH_RE

    for unit in ("cudnn_", "triton_tem_fused_", "sdpa_"):
        matched, seconds = _cpu_seconds(FLASH_RE.search, unit * 100_000)
        assert matched is None and seconds < 5.0
    assert FLASH_RE.search("cudnn_generated_fort_native_sdpa_sm90_knob_7_64x128x128")
    assert FLASH_RE.search("sdpa_then_cudnn") and FLASH_RE.search("triton_tem_fused_attention_0")
    assert not FLASH_RE.search("attention_before_triton_tem_fused_mm")
    assert not FLASH_RE.search("cudnn_conv_only")
