"""Kineto / Chrome trace (torch.profiler) -> KernelTable + CPU ops + runtime calls.

Accepts ``.json``, ``.json.gz`` (detected by magic bytes) or a directory of per-rank traces.
Events are decoded chunk by chunk into columns (see ``_trace_stream``); names are interned to
integer ids, so no per-event Python dict ever exists and peak memory stays near the file size.

Times: Kineto writes microseconds with 3 decimals; we keep integer nanoseconds (rounded), so
``kernels.dur_ns.sum()`` equals the raw sum of the trace's kernel durations.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profilers.parsers._io import open_maybe_gzip, require_file
from profilers.parsers._trace_stream import Args, Event, TraceStream
from profilers.parsers.kernel_table import concat_kernel_tables, make_kernel_table
from workloads.errors import WorkbenchError

MISSING = np.iinfo(np.int64).min  # sentinel for absent integers inside our int64 columns

_GPU_KINDS = {"kernel": 0, "Kernel": 0, "gpu_memcpy": 1, "Memcpy": 1, "gpu_memset": 2, "Memset": 2}
_KIND_NAMES = np.array(["kernel", "memcpy", "memset"], dtype=object)
_OP_CATS = {"cpu_op", "Operator"}
_RUNTIME_CATS = {"cuda_runtime", "cuda_driver", "Runtime"}
_NOARGS = Args()
_TRACE_SUFFIXES = (".json", ".json.gz", ".gz")


@dataclass
class KinetoTrace:
    kernels: pd.DataFrame  # KernelTable (source "torch")
    ops: pd.DataFrame  # cpu_op events
    runtime: pd.DataFrame  # cuda_runtime / cuda_driver events
    device_properties: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def kernel_total_ns(self, kind: str | None = "kernel") -> int:
        return kernel_total_ns(self.kernels, kind)


def kernel_total_ns(kernels: pd.DataFrame, kind: str | None = "kernel") -> int:
    """Sum of ``dur_ns`` over rows of one kind (``None``: all rows); missing durations skipped."""
    durs = kernels["dur_ns"] if kind is None else kernels.loc[kernels["kind"] == kind, "dur_ns"]
    return int(durs.sum(skipna=True))


def _ints(values: list[Any]) -> np.ndarray:
    try:
        return np.array([MISSING if v is None else v for v in values], dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        return np.array(
            [v if type(v) is int and -(2**63) < v < 2**63 else MISSING for v in values],
            dtype=np.int64,
        )


def _floats(values: list[Any]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (OverflowError, TypeError, ValueError):
        return np.array([v if isinstance(v, float | int) else np.nan for v in values], dtype=float)


def _masked_int(arr: np.ndarray) -> pd.arrays.IntegerArray:
    mask = arr == MISSING
    return pd.arrays.IntegerArray(np.where(mask, 0, arr), mask)


def _ns(us: np.ndarray) -> pd.arrays.IntegerArray:
    """Microseconds (float) -> integer nanoseconds, rounded; NaN/inf -> <NA>."""
    with np.errstate(invalid="ignore", over="ignore"):
        # Whole and fractional microseconds apart: ts ~ 4e12 us leaves only ~1 ns of float
        # resolution, and multiplying first would round some timestamps the wrong way.
        whole = np.floor(us)
        bad = ~np.isfinite(us) | (np.abs(whole) >= 2.0**52)
        whole = np.where(bad, 0.0, whole)
        frac = np.where(bad, 0.0, us - whole)
        ns = whole.astype(np.int64) * 1000 + np.rint(frac * 1000.0).astype(np.int64)
        return pd.arrays.IntegerArray(ns, bad)


class _Collector:
    """Column lists for one trace file, filled chunk by chunk."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.dims: dict[bytes, int] = {}
        self.k: dict[str, list[Any]] = {c: [] for c in (
            "name", "kind", "ts", "dur", "ext", "corr", "device", "stream", "regs", "smem")}
        self.k_grid: list[Any] = []
        self.k_block: list[Any] = []
        self.o: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "ext", "flops", "dims")}
        self.r: dict[str, list[Any]] = {c: [] for c in ("name", "ts", "dur", "corr", "ext")}
        self.n_events = 0

    def _intern(self, names: list[str | None]) -> np.ndarray:
        table = self.names
        get = table.get
        ids = [get(n, -1) for n in names]  # type: ignore[arg-type]
        if -1 in ids:  # new names (rare after the first chunk)
            ids = [table.setdefault(n if isinstance(n, str) else "<unnamed>", len(table))
                   for n in names]
        return np.array(ids, dtype=np.int32)

    def add(self, events: list[Event]) -> None:
        self.n_events += len(events)
        kern: list[Event] = []
        ops: list[Event] = []
        rt: list[Event] = []
        for e in events:
            c = e.cat
            if c in _GPU_KINDS:
                kern.append(e)
            elif c in _OP_CATS:
                ops.append(e)
            elif c in _RUNTIME_CATS:
                rt.append(e)
        if kern:
            a = [e.args or _NOARGS for e in kern]
            k = self.k
            k["name"].append(self._intern([e.name for e in kern]))
            k["kind"].append(np.array([_GPU_KINDS[e.cat] for e in kern], dtype=np.int8))  # type: ignore[index]
            k["ts"].append(_floats([e.ts for e in kern]))
            k["dur"].append(_floats([e.dur for e in kern]))
            k["ext"].append(_ints([x.external_id for x in a]))
            k["corr"].append(_ints([x.correlation for x in a]))
            k["device"].append(_ints([x.device for x in a]))
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
        if rt:
            a = [e.args or _NOARGS for e in rt]
            r = self.r
            r["name"].append(self._intern([e.name for e in rt]))
            r["ts"].append(_floats([e.ts for e in rt]))
            r["dur"].append(_floats([e.dur for e in rt]))
            r["corr"].append(_ints([x.correlation for x in a]))
            r["ext"].append(_ints([x.external_id for x in a]))


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _names_cat(codes: np.ndarray, names: np.ndarray) -> pd.Categorical:
    used = np.unique(codes)
    remap = np.full(len(names) + 1, -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return pd.Categorical.from_codes(remap[codes], categories=pd.Index(names[used], dtype=object))


def _link_ops(c: dict[str, np.ndarray], o: dict[str, np.ndarray], r: dict[str, np.ndarray]) -> np.ndarray:
    """Row of the parent cpu_op of each kernel, or -1.

    First the kernel's External id; then its correlation -> the runtime call's External id;
    then the innermost cpu_op whose interval holds that runtime call's start.
    """
    n_ops = len(o["ext"])
    row = np.full(len(c["ext"]), -1, dtype=np.int64)
    if n_ops == 0 or len(row) == 0:
        return row
    ok = o["ext"] != MISSING
    if not ok.any():
        return row
    by_ext = pd.Series(np.flatnonzero(ok), index=o["ext"][ok])
    by_ext = by_ext[~by_ext.index.duplicated(keep="last")]

    def lookup(ext: np.ndarray) -> np.ndarray:
        pos = by_ext.index.get_indexer(ext)
        return np.where((pos >= 0) & (ext != MISSING), by_ext.to_numpy()[np.maximum(pos, 0)], -1)

    row = lookup(c["ext"])
    todo = np.flatnonzero((row < 0) & (c["corr"] != MISSING))
    if len(todo) and len(r["corr"]):
        rt = pd.Series(np.arange(len(r["corr"])), index=r["corr"])
        rt = rt[~rt.index.duplicated(keep="first")]
        pos = rt.index.get_indexer(c["corr"][todo])
        hit = pos >= 0
        todo, rrow = todo[hit], rt.to_numpy()[pos[hit]]
        row[todo] = lookup(r["ext"][rrow])
        left = row[todo] < 0
        if left.any():
            order = np.argsort(o["ts"], kind="stable")
            starts, ends = o["ts"][order], (o["ts"] + o["dur"])[order]
            for i, ts in zip(todo[left], r["ts"][rrow[left]], strict=True):
                j = int(np.searchsorted(starts, ts, side="right")) - 1
                for jj in range(j, max(j - 64, -1), -1):
                    if ends[jj] >= ts:
                        row[i] = order[jj]
                        break
    return row


def _build(path: Path, col: _Collector, header: dict[str, Any], rank_default: int,
           stream: TraceStream) -> KinetoTrace:
    names = np.array(list(col.names), dtype=object)
    k = {key: _cat(v, np.int64) for key, v in col.k.items()}
    o = {key: _cat(v, np.int64) for key, v in col.o.items()}
    r = {key: _cat(v, np.int64) for key, v in col.r.items()}
    for d in (k, o, r):
        for key in ("ts", "dur", "flops"):
            if key in d:
                d[key] = d[key].astype(np.float64)
    dist = header.get("distributedInfo")
    rank = dist.get("rank") if isinstance(dist, dict) else None
    rank = rank if type(rank) is int and -(2**62) < rank < 2**62 else rank_default

    op_row = _link_ops(k, o, r)
    has_op = op_row >= 0
    op_name_ids = np.where(has_op, o["name"][np.maximum(op_row, 0)] if len(o["name"]) else 0, -1)
    op_name = np.where(has_op, names[np.maximum(op_name_ids, 0)] if len(names) else None, None)
    flops = np.where(has_op, o["flops"][np.maximum(op_row, 0)] if len(o["flops"]) else np.nan, np.nan)

    start = _ns(k["ts"])
    order = np.argsort(np.where(start._mask, np.iinfo(np.int64).max, start._data), kind="stable")
    # Only the first kernel of each op carries the op's FLOPs, so sums over kernels stay right.
    op_sorted = op_row[order]
    dup = pd.Series(op_sorted).duplicated().to_numpy() & (op_sorted >= 0)
    flops_sorted = flops[order]
    flops_sorted[dup] = np.nan
    kernels = make_kernel_table({
        "name": _names_cat(k["name"][order], names),
        "kind": pd.Categorical.from_codes(
            k["kind"][order].astype(np.int8), categories=list(_KIND_NAMES)),
        "stream": _masked_int(k["stream"][order]),
        "device": _masked_int(k["device"][order]),
        "rank": pd.arrays.IntegerArray(np.full(len(order), rank, dtype=np.int64),
                                       np.zeros(len(order), dtype=bool)),
        "start_ns": start[order],
        "dur_ns": _ns(k["dur"])[order],
        "grid": [col.k_grid[i] for i in order],
        "block": [col.k_block[i] for i in order],
        "registers": _masked_int(k["regs"][order]),
        "shared_mem": _masked_int(k["smem"][order]),
        "correlation": _masked_int(k["corr"][order]),
        "op_name": op_name[order],
        "flops": flops_sorted,
    }, source="torch")

    dims_names = np.array([b.decode("utf-8", "replace") for b in col.dims] + [None], dtype=object)
    ops = pd.DataFrame({
        "name": _names_cat(o["name"], names),
        "start_ns": _ns(o["ts"]),
        "dur_ns": _ns(o["dur"]),
        "external_id": _masked_int(o["ext"]),
        "flops": pd.array(o["flops"], dtype="Float64"),
        "input_dims": pd.Categorical(dims_names[o["dims"]]) if len(o["dims"]) else
        pd.Categorical([]),
        "rank": pd.array([rank] * len(o["ext"]), dtype="Int64"),
    })
    runtime = pd.DataFrame({
        "name": _names_cat(r["name"], names),
        "start_ns": _ns(r["ts"]),
        "dur_ns": _ns(r["dur"]),
        "correlation": _masked_int(r["corr"]),
        "external_id": _masked_int(r["ext"]),
        "rank": pd.array([rank] * len(r["ext"]), dtype="Int64"),
    })
    props = header.get("deviceProperties")
    props = [p for p in props if isinstance(p, dict)] if isinstance(props, list) else []
    meta = {
        "path": str(path),
        "size": os.path.getsize(path),
        "baseTimeNanoseconds": header.get("baseTimeNanoseconds"),
        "schemaVersion": header.get("schemaVersion"),
        "traceName": header.get("traceName"),
        "distributedInfo": dist if isinstance(dist, dict) else None,
        "rank": rank,
        "n_events": col.n_events,
        "skipped_events": stream.skipped_events,
    }
    return KinetoTrace(kernels, ops, runtime, props, meta)


def _load_file(path: Path, rank_default: int = 0) -> KinetoTrace:
    path = require_file(path, "Kineto trace")
    stream = TraceStream(path, open_maybe_gzip(path))
    col = _Collector()
    # Millions of short-lived acyclic objects: cyclic GC passes would only cost time.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for events in stream.events():
            col.add(events)
        header = stream.header()
        return _build(path, col, header, rank_default, stream)
    finally:
        stream.close()
        if gc_was_on:
            gc.enable()


def trace_files(directory: Path) -> list[Path]:
    """Per-rank trace files in a directory, in name order."""
    files = [p for p in sorted(directory.iterdir())
             if p.is_file() and p.name.endswith(_TRACE_SUFFIXES)]
    return files


def load_kineto(path: str | os.PathLike[str]) -> KinetoTrace:
    """Parse one trace file, or every trace in a directory (one rank per file)."""
    p = Path(path)
    if not p.is_dir():
        return _load_file(p)
    files = trace_files(p)
    if not files:
        raise WorkbenchError(f"{p}: directory holds no .json or .json.gz traces")
    return merge_traces([_load_file(f, rank_default=i) for i, f in enumerate(files)], p)


def merge_traces(traces: list[KinetoTrace], path: Path) -> KinetoTrace:
    """One trace from per-rank traces (each already carries its rank)."""
    ranks = [t.meta["rank"] for t in traces]
    p = path
    return KinetoTrace(
        kernels=concat_kernel_tables([t.kernels for t in traces]),
        ops=_concat_frames([t.ops for t in traces]),
        runtime=_concat_frames([t.runtime for t in traces]),
        device_properties=traces[0].device_properties,
        meta={"path": str(p), "size": sum(t.meta["size"] for t in traces), "ranks": ranks,
              "files": [t.meta for t in traces],
              "baseTimeNanoseconds": traces[0].meta["baseTimeNanoseconds"],
              "schemaVersion": traces[0].meta["schemaVersion"]},
    )


def _concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat([f.astype({"name": object}) for f in frames], ignore_index=True)
    out["name"] = pd.Categorical(out["name"])
    if "input_dims" in out:
        out["input_dims"] = pd.Categorical(out["input_dims"].astype(object))
    return out
