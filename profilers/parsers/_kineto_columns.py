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
from collections import defaultdict
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from profilers.parsers._io import (
    GZIP_MAGIC,
    head_bytes,
    input_limits,
    open_maybe_gzip,
    too_many_bytes,
    too_many_events,
)
from profilers.parsers._trace_mapped import MappedTraceStream, Span
from profilers.parsers._trace_split import can_split, parse_in_pieces
from profilers.parsers._trace_stream import MISSING, Args, Event, TraceStream

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
_ANNOTATION_KINDS = {"user_annotation": 0, "gpu_user_annotation": 1, "overhead": 2}  # regions
ANNOTATION_KIND_NAMES = ["user_annotation", "gpu_user_annotation", "overhead"]
_NOARGS = Args()
_NONE_TYPE = type(None)

# Which table an event's category feeds (0: none of them).
_DEVICE, _OP, _RUNTIME, _ANNOTATION = 1, 2, 3, 4
# a defaultdict: any other category (or none) is 0, looked up in C without a default argument
_GROUP_OF: defaultdict[str | None, int] = defaultdict(int, {
    **{c: _DEVICE for c in _GPU_KINDS}, **{c: _OP for c in _OP_CATS},
    **{c: _RUNTIME for c in _RUNTIME_CATS}, **{c: _ANNOTATION for c in _ANNOTATION_KINDS}})

_CAT, _NAME, _PID, _TID = attrgetter("cat"), attrgetter("name"), attrgetter("pid"), attrgetter("tid")
_TS, _DUR, _ARGS = attrgetter("ts"), attrgetter("dur"), attrgetter("args")
_EXT, _CORR, _DEV = attrgetter("external_id"), attrgetter("correlation"), attrgetter("device")
_STREAM, _REGS, _SMEM = attrgetter("stream"), attrgetter("registers"), attrgetter("shared_mem")
_LAUNCH, _FLOPS = attrgetter("grid", "block"), attrgetter("flops")
_RECORDED = attrgetter("input_dims", "input_types", "concrete_inputs")
RECORDED_SEP = b"\1"  # between an op's three recorded texts: raw JSON never holds byte 1


class ReadCounts:
    """What the reader left out or trimmed, for the trace's notes."""

    def __init__(self, skipped: int = 0, bad_args: int = 0) -> None:
        self.skipped = skipped  # events not read: not an object, or fields of the wrong type
        self.bad_args = bad_args  # events read without their args

    def __add__(self, other: ReadCounts) -> ReadCounts:
        return ReadCounts(self.skipped + other.skipped, self.bad_args + other.bad_args)


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


# A column of one field over a chunk's events, in C (np.fromiter over an attrgetter); a value
# the fast path cannot take (None, text, an int beyond int64) sends the column to the checks
# of _ints / _floats, which read it as missing.
def _int_column(objs: list[Any], field: Callable[[Any], Any]) -> np.ndarray:
    try:
        return np.fromiter(map(field, objs), np.int64, len(objs))
    except (OverflowError, TypeError, ValueError):
        return _ints(list(map(field, objs)))


def _id_column(objs: list[Any], field: Callable[[Any], Any]) -> np.ndarray:
    """As ``_int_column`` for a field that may hold text (pid, tid, stream): numpy would
    parse "7" as 7, and text is no id ("0x0" is ROCm's unknown stream)."""
    values = list(map(field, objs))
    if str in set(map(type, values)):
        return _ints([None if type(v) is str else v for v in values])
    try:
        return np.fromiter(values, np.int64, len(values))
    except (OverflowError, TypeError, ValueError):
        return _ints(values)


def _float_column(objs: list[Any], field: Callable[[Any], Any]) -> np.ndarray:
    try:
        return np.fromiter(map(field, objs), np.float64, len(objs))
    except (OverflowError, TypeError, ValueError):
        return _floats(list(map(field, objs)))


def _threads(pid: np.ndarray, tid: np.ndarray) -> np.ndarray:
    """One integer per (process, thread): pid * 2**32 + tid (Kineto's ids are OS ids); the tid
    alone where the pid is not a small id; MISSING without a tid in [0, 2**32)."""
    ok_tid = (tid >= 0) & (tid < 2**32)
    ok_pid = (pid >= 0) & (pid < 2**30)
    both = np.where(ok_pid, pid, 0) * 2**32 + np.where(ok_tid, tid, 0)
    return np.where(ok_tid, np.where(ok_pid, both, tid), MISSING)


def _args_of(events: list[Event]) -> list[Args]:
    args = list(map(_ARGS, events))
    if _NONE_TYPE in set(map(type, args)):  # (``None in args`` compares each Struct)
        args = [x if x is not None else _NOARGS for x in args]
    return args


class _Collector:
    """Column lists for one trace file, filled chunk by chunk.

    Names, an op's recorded inputs (its Input Dims, Input type and Concrete Inputs texts, one
    key) and a kernel's (grid, block) pair are interned: a column holds integer ids into
    ``names`` / ``recorded`` / ``launches``, so nothing per event outlives its chunk and a
    worker sends back a few arrays."""

    def __init__(self, path: Path | None = None, max_events: int | None = None) -> None:
        self.path = path
        self.max_events = max_events
        self.names: dict[str, int] = {}
        self.recorded: dict[bytes, int] = {}  # dims + SEP + types + SEP + concrete inputs
        self.launches: dict[Any, int] = {}  # (grid, block) of a kernel, each a tuple or None
        self.k: dict[str, list[Any]] = {c: [] for c in (
            "name", "kind", "ts", "dur", "ext", "corr", "device", "stream", "regs", "smem",
            "launch")}
        self.o: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "ext", "flops",
                                                        "recorded")}
        self.r: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "corr", "ext", "pid",
                                                        "thread")}
        self.a: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "kind", "pid", "thread")}
        self.n_events = 0

    def check_events(self) -> None:
        if self.max_events is not None and self.n_events > self.max_events:
            raise too_many_events(self.path or Path("trace"), "trace", self.max_events)

    def _intern(self, events: list[Event]) -> np.ndarray:
        names = list(map(_NAME, events))
        table = self.names
        try:
            return np.fromiter(map(table.__getitem__, names), np.int32, len(names))
        except KeyError:  # new names (few after the first chunk), or an event without one
            for name in dict.fromkeys(names):  # first-appearance order: ids are deterministic
                table.setdefault(name if isinstance(name, str) else "<unnamed>", len(table))
        try:
            return np.fromiter(map(table.__getitem__, names), np.int32, len(names))
        except KeyError:  # an event without a name
            return np.array([table[n if isinstance(n, str) else "<unnamed>"] for n in names],
                            dtype=np.int32)

    def _intern_recorded(self, args: list[Args]) -> np.ndarray:
        """Ids of the ops' recorded inputs in ``recorded``: the three raw texts joined in one
        key (one lookup per op, and no bytes object per text)."""
        keys = list(map(RECORDED_SEP.join, map(_RECORDED, args)))
        table = self.recorded
        ids = np.fromiter(map(table.get, keys, repeat(-1)), np.int32, len(keys))
        for i in np.flatnonzero(ids < 0).tolist():  # new keys
            ids[i] = table.setdefault(keys[i], len(table))
        return ids

    def _intern_launches(self, args: list[Args]) -> np.ndarray:
        """Ids of the kernels' (grid, block) pairs in ``launches`` (decoded as tuples: one
        lookup per kernel, no tuple built here)."""
        keys = list(map(_LAUNCH, args))
        table = self.launches
        ids = np.fromiter(map(table.get, keys, repeat(-1)), np.int32, len(keys))
        for i in np.flatnonzero(ids < 0).tolist():  # new pairs
            ids[i] = table.setdefault(keys[i], len(table))
        return ids

    def compact(self) -> _Collector:
        """One array per column (what a worker sends back: a few big arrays pickle fast)."""
        for cols in (self.k, self.o, self.r, self.a):
            for key, parts in cols.items():
                if len(parts) > 1:
                    cols[key] = [np.concatenate(parts)]
        return self

    def merge(self, other: _Collector) -> None:
        """Append ``other`` (the next part of the same file) with its interned ids remapped."""
        self.n_events += other.n_events
        names = self.names
        name_ids = np.array([names.setdefault(n, len(names)) for n in other.names],
                            dtype=np.int32)
        # One extra slot: remap[-1] keeps "none" (-1) at -1.
        recorded = self.recorded
        recorded_ids = np.array([recorded.setdefault(d, len(recorded)) for d in other.recorded]
                                + [-1], dtype=np.int32)
        launches = self.launches
        launch_ids = np.array([launches.setdefault(t, len(launches)) for t in other.launches],
                              dtype=np.int32)
        for mine, theirs in ((self.k, other.k), (self.o, other.o), (self.r, other.r),
                             (self.a, other.a)):
            for key, parts in theirs.items():
                if key == "name":
                    mine[key].extend(name_ids[part] for part in parts)
                elif key == "recorded":
                    mine[key].extend(recorded_ids[part] for part in parts)
                elif key == "launch":
                    mine[key].extend(launch_ids[part] for part in parts)
                else:
                    mine[key].extend(parts)

    def add(self, events: list[Event]) -> None:
        n = len(events)
        self.n_events += n
        self.check_events()
        group = np.fromiter(map(_GROUP_OF.__getitem__, map(_CAT, events)), np.int8, n)
        rows = {g: np.flatnonzero(group == g).tolist() for g in (_DEVICE, _OP, _RUNTIME, _ANNOTATION)}
        take = events.__getitem__
        if rows[_DEVICE]:
            kern = list(map(take, rows[_DEVICE]))
            self._add_device(list(map(_CAT, kern)), kern)
        if rows[_OP]:
            self._add_ops(list(map(take, rows[_OP])))
        if rows[_RUNTIME]:
            rt = list(map(take, rows[_RUNTIME]))
            a = _args_of(rt)
            r = self.r
            r["name"].append(self._intern(rt))
            r["ts"].append(_float_column(rt, _TS))
            r["dur"].append(_float_column(rt, _DUR))
            r["corr"].append(_int_column(a, _CORR))
            r["ext"].append(_int_column(a, _EXT))
            pid = _id_column(rt, _PID)
            r["pid"].append(pid)
            r["thread"].append(_threads(pid, _id_column(rt, _TID)))
        if rows[_ANNOTATION]:  # annotation ranges (ProfilerStep#N, record_function, GPU copies)
            ann = list(map(take, rows[_ANNOTATION]))
            an = self.a
            an["name"].append(self._intern(ann))
            an["ts"].append(_float_column(ann, _TS))
            an["dur"].append(_float_column(ann, _DUR))
            an["kind"].append(np.fromiter(map(_ANNOTATION_KINDS.__getitem__, map(_CAT, ann)),
                                          np.int8, len(ann)))
            pid = _id_column(ann, _PID)
            an["pid"].append(pid)
            an["thread"].append(_threads(pid, _id_column(ann, _TID)))

    def _add_device(self, cats: list[str], kern: list[Event]) -> None:
        kind = np.fromiter(map(_GPU_KINDS.__getitem__, cats), np.int8, len(cats))
        if _MTIA in cats:  # MTIA: dma_* are copies; its stream waits are no work
            keep = []
            for i, (c, e) in enumerate(zip(cats, kern, strict=True)):
                if c == _MTIA:
                    if e.name in _MTIA_WAITS:
                        continue
                    kind[i] = 1 if (e.name or "").startswith("dma") else 0
                keep.append(i)
            kern, kind = [kern[i] for i in keep], kind[keep]
            if not kern:
                return
        a = _args_of(kern)
        k = self.k
        k["name"].append(self._intern(kern))
        k["kind"].append(kind)
        k["ts"].append(_float_column(kern, _TS))
        k["dur"].append(_float_column(kern, _DUR))
        k["ext"].append(_int_column(a, _EXT))
        k["corr"].append(_int_column(a, _CORR))
        # A device event without args.device takes its track's pid (Kineto's device id).
        device = _int_column(a, _DEV)
        if (device == MISSING).any():
            device = np.where(device == MISSING, _id_column(kern, _PID), device)
        k["device"].append(device)
        k["stream"].append(_id_column(a, _STREAM))
        k["regs"].append(_int_column(a, _REGS))
        k["smem"].append(_int_column(a, _SMEM))
        k["launch"].append(self._intern_launches(a))

    def _add_ops(self, ops: list[Event]) -> None:
        a = _args_of(ops)
        o = self.o
        o["name"].append(self._intern(ops))
        o["ts"].append(_float_column(ops, _TS))
        o["dur"].append(_float_column(ops, _DUR))
        o["ext"].append(_int_column(a, _EXT))
        o["flops"].append(_float_column(a, _FLOPS))
        o["recorded"].append(self._intern_recorded(a))


def _parse_stream(path: Path, source: Any, bare: bool = False) -> tuple[_Collector, TraceStream]:
    """Decode one stream into columns; the TraceStream (closed) keeps the header bytes.
    ``source``: a ``Span`` of a plain file (decoded in place), or a binary stream (gzip)."""
    stream = MappedTraceStream(path, source, bare) if isinstance(source, Span) else \
        TraceStream(path, source, bare=bare)
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
    if can_split(path, size):
        # pieces shared by this process and a forked worker; this one imports pandas first
        # when it is not loaded yet (the worker meanwhile parses)
        parts = parse_in_pieces(path, size, _parse_stream, meanwhile=import_pandas)
        if parts is not None:
            col, first = parts[0]
            for rest, _ in parts[1:]:
                col.merge(rest)
            col.check_events()
            counts = sum((_counts(s) for _, s in parts[1:]), _counts(first))
            return col, first.header(suffix=parts[-1][1].suffix), counts
    plain = head_bytes(path, 2) != GZIP_MAGIC
    col, first = _parse_stream(path, Span(0, size) if plain else open_maybe_gzip(path))
    return col, first.header(), _counts(first)
