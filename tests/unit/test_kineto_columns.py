"""The Kineto collector turns a chunk's events into columns in C (np.fromiter over field
getters, interned names / recorded inputs / (grid, block) pairs): checked value for value against a plain
per-event reading of the same decoded events, on generated events with every odd type the
reader lets through (null fields, text ids, ids beyond int64, missing args, MTIA waits,
annotation ranges, pids / tids out of range). An op's three recorded-input texts are one
interned key (joined by byte 1)."""

from __future__ import annotations

import json
import random

import msgspec
import numpy as np

from profilers.parsers._kineto_columns import _Collector
from profilers.parsers._trace_stream import MISSING, Event

BAD_INTS = [None, "0x0", "7", 10**30, -(10**30), -1, 0, 2**40, 2**31 + 5, 2**63 - 1]
CATS = ["kernel", "gpu_memcpy", "gpu_memset", "Memcpy", "cpu_op", "Operator", "cuda_runtime",
        "cuda_driver", "mtia_runtime", "mtia_ccp_events", "user_annotation",
        "gpu_user_annotation", "overhead", "ac2g", "python_function", None]
NAMES = ["k1", "k2", "aten::mm", "cudaLaunchKernel", "event_wait", "event_record", "dma_in",
         "ProfilerStep#3", None, "ünï"]

GPU_KIND = {"kernel": 0, "gpu_memcpy": 1, "gpu_memset": 2, "Memcpy": 1, "mtia_ccp_events": 0}
GROUP = {**{c: "k" for c in GPU_KIND}, "cpu_op": "o", "Operator": "o", "cuda_runtime": "r",
         "cuda_driver": "r", "mtia_runtime": "r", "user_annotation": "a",
         "gpu_user_annotation": "a", "overhead": "a"}
ANN_KIND = {"user_annotation": 0, "gpu_user_annotation": 1, "overhead": 2}


def _int(v):
    return v if type(v) is int and -(2**63) < v < 2**63 else MISSING


def _float(v):
    return float(v) if isinstance(v, float | int) else np.nan


def _thread(e):
    pid, tid = e.pid, e.tid
    if type(tid) is not int or not 0 <= tid < 2**32:
        return MISSING
    return pid * 2**32 + tid if type(pid) is int and 0 <= pid < 2**30 else tid


def _reference(events: list[Event]) -> dict[str, list]:
    """Row values per table and column, one event at a time (names as text, shapes as
    tuples, dims as bytes): what the columns must hold."""
    out: dict[str, list] = {t + "." + c: [] for t, cols in (
        ("k", ("name", "kind", "ts", "dur", "ext", "corr", "device", "stream", "regs", "smem",
               "launch")),
        ("o", ("name", "ts", "dur", "ext", "flops", "recorded")),
        ("r", ("name", "ts", "dur", "corr", "ext", "pid", "thread")),
        ("a", ("name", "ts", "dur", "kind", "pid", "thread"))) for c in cols}
    for e in events:
        group = GROUP.get(e.cat)
        if group is None or (e.cat == "mtia_ccp_events" and e.name in ("event_wait", "event_record")):
            continue
        x = e.args
        name = e.name if isinstance(e.name, str) else "<unnamed>"
        row = {"name": name, "ts": _float(e.ts), "dur": _float(e.dur)}
        if group == "k":
            kind = GPU_KIND[e.cat]
            if e.cat == "mtia_ccp_events":
                kind = 1 if (e.name or "").startswith("dma") else 0
            device = _int(x.device) if x is not None else MISSING
            if device == MISSING:
                device = _int(e.pid)
            row.update(kind=kind, ext=_int(x.external_id) if x else MISSING,
                       corr=_int(x.correlation) if x else MISSING, device=device,
                       stream=_int(x.stream) if x else MISSING,
                       regs=_int(x.registers) if x else MISSING,
                       smem=_int(x.shared_mem) if x else MISSING,
                       launch=(tuple(x.grid) if x and x.grid else None,
                               tuple(x.block) if x and x.block else None))
        elif group == "o":
            row.update(ext=_int(x.external_id) if x else MISSING,
                       flops=_float(x.flops) if x else np.nan,
                       recorded=tuple(bytes(r) or None for r in (
                           x.input_dims, x.input_types, x.concrete_inputs)) if x else (None,) * 3)
        elif group == "r":
            row.update(corr=_int(x.correlation) if x else MISSING,
                       ext=_int(x.external_id) if x else MISSING, pid=_int(e.pid),
                       thread=_thread(e))
        else:
            row.update(kind=ANN_KIND[e.cat], pid=_int(e.pid), thread=_thread(e))
        for key, value in row.items():
            out[group + "." + key].append(value)
    return out


def _columns(col: _Collector) -> dict[str, list]:
    """The collector's columns with interned ids turned back into values."""
    names = list(col.names)
    recorded = [tuple(t or None for t in key.split(b"\1")) for key in col.recorded]
    launches = [(g or None, b or None) for g, b in col.launches]
    out = {}
    for table, cols in (("k", col.k), ("o", col.o), ("r", col.r), ("a", col.a)):
        for key, parts in cols.items():
            values = np.concatenate(parts) if parts else np.zeros(0)
            if key == "name":
                values = [names[i] for i in values]
            elif key == "recorded":
                values = [recorded[i] for i in values]
            elif key == "launch":
                values = [launches[i] for i in values]
            else:
                values = values.tolist()
            out[table + "." + key] = values
    return out


def _event(rng: random.Random, i: int) -> dict:
    e = {"ph": "X", "cat": rng.choice(CATS), "name": rng.choice(NAMES),
         "pid": rng.choice([0, 1, 7, "Spans", None, 2**31, -3]),
         "tid": rng.choice([7, 2**32, -1, "stream 7", None, 123456]),
         "ts": rng.choice([1.5, 10, None, 5e12 + 0.123]), "dur": rng.choice([2.25, 0, None, 7])}
    if rng.random() < 0.9:
        args = {"External id": rng.choice(BAD_INTS[2:] + [i]), "correlation": rng.choice([i, None, 2**63 - 1]),
                "device": rng.choice([0, 1, None, 3]), "stream": rng.choice(BAD_INTS),
                "grid": rng.choice([[1, 2, 3], [4, 1, 1], [], None]),
                "block": rng.choice([[128, 1, 1], [32, 4, 1], None]),
                "registers per thread": rng.choice([32, None, 255]),
                "shared memory": rng.choice([0, 1024, None]), "flops": rng.choice([1e9, 3, None]),
                "Input Dims": rng.choice([[[1, 2], []], [[4096, 4096]], []]),
                "Input type": rng.choice([["float", ""], ["c10::BFloat16"]]),
                "Concrete Inputs": rng.choice([["", "1"], ["False"]])}
        for key in rng.sample(sorted(args), rng.randint(0, len(args))):
            del args[key]
        e["args"] = args
    elif rng.random() < 0.5:
        e["args"] = None
    for key in rng.sample(["cat", "name", "pid", "tid", "ts", "dur"], rng.randint(0, 2)):
        e.pop(key, None)
    return e


def test_columns_equal_a_per_event_reading():
    rng = random.Random(7)
    decoder = msgspec.json.Decoder(list[Event])
    for case in range(200):
        col = _Collector()
        events_all: list[Event] = []
        for _chunk in range(rng.randint(1, 4)):  # interned ids carry across chunks
            text = json.dumps([_event(rng, i) for i in range(rng.randint(0, 60))])
            try:
                events = decoder.decode(text)
            except msgspec.ValidationError:  # a value the typed decode refuses: lenient path
                continue
            col.add(events)
            events_all += events
        got, want = _columns(col), _reference(events_all)
        for key, values in want.items():
            assert len(got[key]) == len(values), (case, key)
            for g, w in zip(got[key], values, strict=True):
                assert g == w or (isinstance(w, float) and np.isnan(w) and np.isnan(g)), \
                    (case, key, g, w)


def test_merge_remaps_interned_ids_of_the_second_part():
    rng = random.Random(11)
    decoder = msgspec.json.Decoder(list[Event])
    for _case in range(50):
        parts = []
        for _ in range(2):
            while True:
                try:
                    parts.append(decoder.decode(json.dumps([_event(rng, i) for i in range(40)])))
                    break
                except msgspec.ValidationError:
                    continue
        whole = _Collector()
        for events in parts:
            whole.add(events)
        first, second = _Collector(), _Collector()
        first.add(parts[0])
        second.add(parts[1])
        first.compact().merge(second.compact())
        a, b = _columns(first), _columns(whole)
        assert a.keys() == b.keys()
        for key in a:
            assert len(a[key]) == len(b[key])
            for x, y in zip(a[key], b[key], strict=True):
                assert x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y))


def test_text_ids_are_missing_not_parsed(tmp_path):
    """A stream or pid given as text was parsed as a number when every value of the chunk was
    numeric text ("7" -> 7) and read as missing when one was not ("0x0"): text is no id."""
    from profilers.parsers.kineto import load_kineto

    events = [{"ph": "X", "cat": "kernel", "name": "k", "pid": "3", "ts": 1.0 + i, "dur": 1.0,
               "args": {"stream": "7", "correlation": i}} for i in range(3)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": events}))
    k = load_kineto(path).kernels
    assert k["stream"].isna().all() and k["device"].isna().all()
    assert k["correlation"].tolist() == [0, 1, 2]
