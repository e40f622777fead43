"""Kineto trace -> column arrays (numpy + msgspec only: no pandas, so a big trace's second
half can be forked off and parsed before the parent has even imported pandas).

``collect(path)`` returns a ``_Collector`` (interned names, numpy column parts), the trace's
top-level header and a ``ReadCounts`` (events skipped for wrong types, kept without their
args); kineto.py builds the DataFrames from it.

Device activity is every Kineto device category, not only CUDA's: kernel / gpu_memcpy /
gpu_memset (CUDA, ROCm, XPU), mtia_ccp_events (MTIA: dma_* are copies; event_wait and
event_record are stream waits, left out like CUDA's cuda_sync events), mlu_* and gcu_* copies.
Runtime calls likewise: cuda_runtime / cuda_driver (ROCm's hip* calls come under them too),
mtia_runtime, xpu_*, privateuse1_*, mlu_runtime, gcu_*. A device event without args.device
takes its track's pid, which Kineto sets to the device id.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from profilers.parsers._io import input_limits, open_maybe_gzip, too_many_bytes, too_many_events
from profilers.parsers._trace_split import can_split, parse_in_two
from profilers.parsers._trace_stream import Args, Event, TraceStream

MISSING = np.iinfo(np.int64).min  # sentinel for absent integers inside our int64 columns

_GPU_KINDS = {"kernel": 0, "Kernel": 0, "gpu_memcpy": 1, "Memcpy": 1, "gpu_memset": 2, "Memset": 2,
              "mlu_memcpy": 1, "mlu_memset": 2, "gcu_memcpy": 1, "GCU_MEMCPY": 1,
              "gcu_memset": 2, "GCU_MEMSET": 2, "mtia_ccp_events": 0}
_MTIA = "mtia_ccp_events"
_MTIA_WAITS = {"event_wait", "event_record"}  # stream waits on the device, not work
_KIND_NAMES = np.array(["kernel", "memcpy", "memset"], dtype=object)
_OP_CATS = {"cpu_op", "Operator"}
_RUNTIME_CATS = {"cuda_runtime", "cuda_driver", "Runtime", "mtia_runtime", "xpu_runtime",
                 "xpu_driver", "privateuse1_runtime", "privateuse1_driver", "mlu_runtime",
                 "gcu_runtime", "gcu_driver"}
_NOARGS = Args()


class ReadCounts:
    """What the reader left out or trimmed, for the trace's notes."""

    def __init__(self, skipped: int = 0, bad_args: int = 0) -> None:
        self.skipped = skipped  # events not read: not an object, or fields of the wrong type
        self.bad_args = bad_args  # events read without their unreadable args

    def __add__(self, other: ReadCounts) -> ReadCounts:
        return ReadCounts(self.skipped + other.skipped, self.bad_args + other.bad_args)


def _kind(e: Event) -> int:
    if e.cat == _MTIA:
        return 1 if (e.name or "").startswith("dma") else 0
    return _GPU_KINDS[e.cat]  # type: ignore[index]


def _device(e: Event, x: Args) -> int | None:
    if x.device is not None:
        return x.device
    return e.pid if type(e.pid) is int else None

_ANNOTATION_KINDS = {"user_annotation": 0, "gpu_user_annotation": 1, "overhead": 2}  # regions
ANNOTATION_KIND_NAMES = ["user_annotation", "gpu_user_annotation", "overhead"]

def _thread(e: Event) -> int | None:
    """One integer per (process, thread): pid * 2**32 + tid (Kineto's ids are OS ids)."""
    pid, tid = getattr(e, "pid", None), e.tid
    if type(tid) is not int or not 0 <= tid < 2**32:
        return None
    return pid * 2**32 + tid if type(pid) is int and 0 <= pid < 2**30 else tid


def _ints(values: Any) -> np.ndarray:
    try:
        return np.array(values, dtype=np.int64)  # C fast path: no None in the column
    except (OverflowError, TypeError, ValueError):
        pass
    try:
        return np.array([MISSING if v is None else v for v in values], dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        return np.array(
            [v if type(v) is int and -(2**63) < v < 2**63 else MISSING for v in values],
            dtype=np.int64,
        )


def _floats(values: Any) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        return np.array([v if isinstance(v, float | int) else np.nan for v in values], dtype=float)


class _Collector:
    """Column lists for one trace file, filled chunk by chunk."""

    def __init__(self, path: Path | None = None, max_events: int | None = None) -> None:
        self.path = path
        self.max_events = max_events
        self.names: dict[str, int] = {}
        self.dims: dict[bytes, int] = {}
        self.k: dict[str, list[Any]] = {c: [] for c in (
            "name", "kind", "ts", "dur", "ext", "corr", "device", "stream", "regs", "smem")}
        self.k_grid: list[Any] = []
        self.k_block: list[Any] = []
        self.o: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "ext", "flops", "dims",
                                                        "types", "concrete")}
        self.r: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "corr", "ext", "pid",
                                                        "thread")}
        self.a: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "kind", "pid", "thread")}
        self.n_events = 0

    def check_events(self) -> None:
        if self.max_events is not None and self.n_events > self.max_events:
            raise too_many_events(self.path or Path("trace"), "trace", self.max_events)

    def _intern(self, names: Any) -> np.ndarray:
        table = self.names
        get = table.get
        ids = [get(n, -1) for n in names]  # type: ignore[arg-type]
        if -1 in ids:  # new names (rare after the first chunk)
            ids = [table.setdefault(n if isinstance(n, str) else "<unnamed>", len(table))
                   for n in names]
        return np.array(ids, dtype=np.int32)

    def compact(self) -> _Collector:
        """One array per column (what a worker sends back: a few big arrays pickle fast)."""
        for cols in (self.k, self.o, self.r, self.a):
            for key, parts in cols.items():
                if len(parts) > 1:
                    cols[key] = [np.concatenate(parts)]
        return self

    def merge(self, other: _Collector) -> None:
        """Append ``other`` (the next part of the same file) with its name ids remapped."""
        self.n_events += other.n_events
        names = self.names
        name_ids = np.array([names.setdefault(n, len(names)) for n in other.names],
                            dtype=np.int32)
        dims = self.dims
        # One extra slot: remap[-1] keeps "no dims" (-1) at -1.
        dim_ids = np.array([dims.setdefault(d, len(dims)) for d in other.dims] + [-1],
                           dtype=np.int32)
        for mine, theirs in ((self.k, other.k), (self.o, other.o), (self.r, other.r),
                             (self.a, other.a)):
            for key, parts in theirs.items():
                if key == "name":
                    mine[key].extend(name_ids[part] for part in parts)
                elif key in ("dims", "types", "concrete"):  # all three interned in ``dims``
                    mine[key].extend(dim_ids[part] for part in parts)
                else:
                    mine[key].extend(parts)
        self.k_grid.extend(other.k_grid)
        self.k_block.extend(other.k_block)

    def add(self, events: list[Event]) -> None:
        self.n_events += len(events)
        self.check_events()
        kern: list[Event] = []
        ops: list[Event] = []
        rt: list[Event] = []
        ann: list[Event] = []
        for e in events:
            c = e.cat
            if c in _GPU_KINDS:
                if c != _MTIA or e.name not in _MTIA_WAITS:
                    kern.append(e)
            elif c in _OP_CATS:
                ops.append(e)
            elif c in _RUNTIME_CATS:
                rt.append(e)
            elif c in _ANNOTATION_KINDS:
                ann.append(e)
        if kern:
            a = [e.args or _NOARGS for e in kern]
            k = self.k
            k["name"].append(self._intern([e.name for e in kern]))
            k["kind"].append(np.array([_kind(e) for e in kern], dtype=np.int8))
            k["ts"].append(_floats([e.ts for e in kern]))
            k["dur"].append(_floats([e.dur for e in kern]))
            k["ext"].append(_ints([x.external_id for x in a]))
            k["corr"].append(_ints([x.correlation for x in a]))
            k["device"].append(_ints([_device(e, x) for e, x in zip(kern, a, strict=True)]))
            k["stream"].append(_ints([x.stream for x in a]))
            k["regs"].append(_ints([x.registers for x in a]))
            k["smem"].append(_ints([x.shared_mem for x in a]))
            self.k_grid.extend(tuple(x.grid) if x.grid else None for x in a)
            self.k_block.extend(tuple(x.block) if x.block else None for x in a)
        if ops:
            a = [e.args or _NOARGS for e in ops]
            o = self.o
            o["name"].append(self._intern([e.name for e in ops]))
            o["ts"].append(_floats([e.ts for e in ops]))
            o["dur"].append(_floats([e.dur for e in ops]))
            o["ext"].append(_ints([x.external_id for x in a]))
            o["flops"].append(_floats([x.flops for x in a]))
            dims = self.dims
            o["dims"].append(np.array(
                [dims.setdefault(bytes(x.input_dims), len(dims)) if len(x.input_dims) else -1
                 for x in a], dtype=np.int32))
            # Input types and concrete (scalar) inputs: interned in the same table as the dims.
            o["types"].append(np.array(
                [dims.setdefault(bytes(x.input_types), len(dims)) if len(x.input_types) else -1
                 for x in a], dtype=np.int32))
            o["concrete"].append(np.array(
                [dims.setdefault(bytes(x.concrete_inputs), len(dims))
                 if len(x.concrete_inputs) else -1 for x in a], dtype=np.int32))
        if rt:
            a = [e.args or _NOARGS for e in rt]
            r = self.r
            r["name"].append(self._intern([e.name for e in rt]))
            r["ts"].append(_floats([e.ts for e in rt]))
            r["dur"].append(_floats([e.dur for e in rt]))
            r["corr"].append(_ints([x.correlation for x in a]))
            r["ext"].append(_ints([x.external_id for x in a]))
            r["pid"].append(_ints([e.pid if type(e.pid) is int else None for e in rt]))
            r["thread"].append(_ints([_thread(e) for e in rt]))
        if ann:  # annotation ranges (ProfilerStep#N, record_function, their GPU copies)
            an = self.a
            an["name"].append(self._intern([e.name for e in ann]))
            an["ts"].append(_floats([e.ts for e in ann]))
            an["dur"].append(_floats([e.dur for e in ann]))
            an["kind"].append(np.array([_ANNOTATION_KINDS[e.cat] for e in ann], dtype=np.int8))  # type: ignore[index]
            an["pid"].append(_ints([getattr(e, "pid", None) for e in ann]))
            an["thread"].append(_ints([_thread(e) for e in ann]))


def _parse_stream(path: Path, raw: Any, bare: bool = False) -> tuple[_Collector, TraceStream]:
    """Decode one stream into columns; the TraceStream (closed) keeps the header bytes."""
    stream = TraceStream(path, raw, bare=bare)
    col = _Collector(path, input_limits().max_events)
    # Millions of short-lived acyclic objects: cyclic GC passes would only cost time.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for events in stream.events():
            col.add(events)
    finally:
        stream.close()
        if gc_was_on:
            gc.enable()
    stream._f = None  # type: ignore[assignment]  # picklable when a worker sends it back
    return col.compact(), stream


def import_pandas() -> None:
    """pandas, imported with the cyclic GC paused (its import allocates ~10^5 objects and
    GC passes cost a fifth of it). Runs in the parent while a forked worker parses."""
    if "pandas" in sys.modules:
        return
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        import pandas  # noqa: F401
    finally:
        if gc_was_on:
            gc.enable()


def _counts(stream: TraceStream) -> ReadCounts:
    return ReadCounts(stream.skipped_events, stream.bad_args_events)


def collect(path: Path) -> tuple[_Collector, dict[str, Any], ReadCounts]:
    """Columns, header and read counts of one trace file (two processes when big)."""
    size = os.path.getsize(path)
    max_bytes = input_limits().max_bytes
    if max_bytes is not None and size > max_bytes:  # uncompressed or not: never smaller inside
        raise too_many_bytes(path, "trace", max_bytes)
    halves = None
    if can_split(path, size):
        # Without pandas loaded yet, the parent imports it during the worker's parse, so it
        # takes the smaller part of the file.
        first_share = 0.5 if "pandas" in sys.modules else 0.3
        halves = parse_in_two(path, size, _parse_stream, first_share=first_share,
                              meanwhile=import_pandas)
    if halves is not None:
        (col, first), (rest, second) = halves
        col.merge(rest)
        col.check_events()
        return col, first.header(suffix=second.suffix), _counts(first) + _counts(second)
    col, first = _parse_stream(path, open_maybe_gzip(path))
    return col, first.header(), _counts(first)
