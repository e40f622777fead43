"""Kineto / Chrome trace (torch.profiler) -> KernelTable + CPU ops + runtime calls.

Accepts ``.json``, ``.json.gz`` (detected by magic bytes) or a directory of per-rank traces.
Events are decoded chunk by chunk into columns (see ``_trace_stream`` and ``_kineto_columns``;
an uncompressed trace above 48 MB is parsed in pieces shared by two processes, see ``_trace_split``); names are
interned to integer ids, so no per-event Python dict ever exists and peak memory stays near the
file size.

Times: Kineto writes microseconds with 3 decimals; we keep integer nanoseconds (rounded), so
``kernels.dur_ns.sum()`` equals the raw sum of the trace's valid kernel durations.

Invalid events never reach a sum: an event whose fields have the wrong type (a string
duration) is skipped by the reader, and a device activity, op or runtime call whose duration
is negative, missing or not finite is left out here. Both are counted in ``meta["notes"]``
(and ``meta["invalid_events"]``), which the analysis shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from profilers.parsers._io import require_file
from profilers.parsers._kineto_columns import (
    MISSING,
    RECORDED_SEP,
    ReadCounts,
    _Collector,
    collect,
    import_pandas,
)
from profilers.parsers.lookup import lookup_rows
from workloads.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions that build tables: a big trace's parse starts (and
# forks its worker) before pandas is loaded, and pandas loads while the worker parses.

_KIND_NAMES = np.array(["kernel", "memcpy", "memset"], dtype=object)
_TRACE_SUFFIXES = (".json", ".json.gz", ".gz")


@dataclass
class KinetoTrace:
    kernels: pd.DataFrame  # KernelTable (source "torch")
    ops: pd.DataFrame  # cpu_op events
    runtime: pd.DataFrame  # cuda_runtime / cuda_driver events
    device_properties: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    annotations: pd.DataFrame | None = None  # user/gpu annotation + overhead ranges (parsers.ranges)

    def kernel_total_ns(self, kind: str | None = "kernel") -> int:
        return kernel_total_ns(self.kernels, kind)


def kernel_total_ns(kernels: pd.DataFrame, kind: str | None = "kernel") -> int:
    """Sum of ``dur_ns`` over rows of one kind (``None``: all rows); missing durations skipped."""
    durs = kernels["dur_ns"] if kind is None else kernels.loc[kernels["kind"] == kind, "dur_ns"]
    return int(durs.sum(skipna=True))


def _masked_int(arr: np.ndarray) -> pd.arrays.IntegerArray:
    import pandas as pd

    mask = arr == MISSING
    return pd.arrays.IntegerArray(np.where(mask, 0, arr), mask)


def _ns(us: np.ndarray) -> pd.arrays.IntegerArray:
    """Microseconds (float) -> integer nanoseconds, rounded; NaN/inf -> <NA>."""
    import pandas as pd

    with np.errstate(invalid="ignore", over="ignore"):
        # Whole and fractional microseconds apart: ts ~ 4e12 us leaves only ~1 ns of float
        # resolution, and multiplying first would round some timestamps the wrong way.
        whole = np.floor(us)
        frac = us - whole
        bad = ~(np.abs(whole) < 2.0**52)  # NaN and +-inf compare False: bad too
        if bad.any():
            whole[bad] = 0.0
            frac[bad] = 0.0
        frac *= 1000.0
        np.rint(frac, out=frac)
        ns = whole.astype(np.int64)
        ns *= 1000
        ns += frac.astype(np.int64)
        return pd.arrays.IntegerArray(ns, bad)


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _same_int(value: int, n: int) -> pd.arrays.IntegerArray:
    import pandas as pd

    return pd.arrays.IntegerArray(np.full(n, value, dtype=np.int64), np.zeros(n, dtype=bool))


def _used_ids(codes: np.ndarray, n: int) -> np.ndarray:
    """The ids in [0, n) that occur in ``codes`` (-1 = none), ascending: a count, not a sort."""
    return np.flatnonzero(np.bincount(codes[codes >= 0], minlength=n))


def _recorded_columns(ids: np.ndarray, recorded: dict[bytes, int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each op's Input Dims, Input type and Concrete Inputs as ids into one table of texts
    (-1: not recorded), from the interned joined keys: the per-key work is per distinct key."""
    texts: dict[bytes, int] = {}
    parts = np.full((len(recorded) + 1, 3), -1, dtype=np.int32)  # last row: id -1
    for key, i in recorded.items():
        for j, raw in enumerate(key.split(RECORDED_SEP)):
            if raw:
                parts[i, j] = texts.setdefault(raw, len(texts))
    decoded = np.array([t.decode("utf-8", "replace") for t in texts], dtype=object)
    rows = parts[ids] if len(ids) else np.zeros((0, 3), dtype=np.int32)
    return rows[:, 0], rows[:, 1], rows[:, 2], decoded


def _texts_cat(codes: np.ndarray, texts: np.ndarray) -> pd.Categorical:
    """Interned texts (ids into ``texts``, -1 none) as the Categorical ``pd.Categorical``
    would make of the strings (sorted distinct categories), without one string per row."""
    import pandas as pd

    if not len(codes):
        return pd.Categorical([])
    used = _used_ids(codes, len(texts))
    # Distinct ids can decode to the same text (invalid UTF-8 replaced): one category each.
    categories, position = np.unique(texts[used], return_inverse=True)
    remap = np.full(len(texts) + 1, -1, dtype=np.int32)  # the last slot: id -1 stays -1
    remap[used] = np.asarray(position).reshape(-1)
    return pd.Categorical.from_codes(remap[codes], categories=pd.Index(categories))


def _launch_objects(launches: dict[Any, int]) -> tuple[np.ndarray, np.ndarray]:
    """The interned (grid, block) pairs as two object arrays of tuples (None for an absent or
    empty one): a column takes them by fancy indexing, one reference per launch and no tuple
    built per launch. Equal triples share one tuple object."""
    grid = np.empty(len(launches), dtype=object)
    block = np.empty(len(launches), dtype=object)
    triples: dict[Any, Any] = {}
    for (g, b), i in launches.items():
        grid[i] = triples.setdefault(g, g) if g else None
        block[i] = triples.setdefault(b, b) if b else None
    return grid, block


def _names_cat(codes: np.ndarray, names: np.ndarray) -> pd.Categorical:
    import pandas as pd

    used = _used_ids(codes, len(names))
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
    op_rows = np.flatnonzero(ok)

    def lookup(ext: np.ndarray) -> np.ndarray:  # the last op of an External id
        at = lookup_rows(o["ext"][ok], ext, keep="last")
        return np.where((at >= 0) & (ext != MISSING), op_rows[np.maximum(at, 0)], -1)

    row = lookup(c["ext"])
    todo = np.flatnonzero((row < 0) & (c["corr"] != MISSING))
    if len(todo) and len(r["corr"]):
        pos = lookup_rows(r["corr"], c["corr"][todo], keep="first")
        hit = pos >= 0
        todo, rrow = todo[hit], pos[hit]
        row[todo] = lookup(r["ext"][rrow])
        left = row[todo] < 0
        if left.any():
            row[todo[left]] = _innermost_op(o, r["ts"][rrow[left]])
    return row


_MAX_NESTING = 64  # ops looked at back from a call's start for one that holds it


def _innermost_op(o: dict[str, np.ndarray], ts: np.ndarray) -> np.ndarray:
    """Row of the op that holds each time ``ts`` and started last (looking back at most
    _MAX_NESTING ops by start), or -1; vectorized over the calls, one pass per depth."""
    order = np.argsort(o["ts"], kind="stable")
    starts, ends = o["ts"][order], (o["ts"] + o["dur"])[order]
    last = np.searchsorted(starts, ts, side="right") - 1
    out = np.full(len(ts), -1, dtype=np.int64)
    todo = np.arange(len(ts))
    for back in range(_MAX_NESTING):
        at = last[todo] - back
        todo = todo[at >= 0]
        at = at[at >= 0]
        holds = ends[at] >= ts[todo]
        out[todo[holds]] = order[at[holds]]
        todo = todo[~holds]
        if not len(todo):
            break
    return out


_MAX_US = 2.0**52 / 1000  # beyond this a microsecond value has no nanosecond resolution left


def _valid_durations(d: dict[str, np.ndarray]) -> np.ndarray:
    dur = d["dur"]
    with np.errstate(invalid="ignore"):
        return np.isfinite(dur) & (dur >= 0) & (dur < _MAX_US)


def _keep_rows(d: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {key: v[keep] for key, v in d.items()}


def _invalid_notes(counts: ReadCounts, invalid: dict[str, int]) -> list[str]:
    notes = []
    if counts.skipped:
        notes.append(f"{counts.skipped:,} trace events skipped: fields of the wrong type "
                     "(e.g. a duration given as text) or not JSON objects")
    if counts.bad_args:
        notes.append(f"{counts.bad_args:,} trace events read without their args "
                     "(values of the wrong type)")
    what = {"kernels": "GPU activities", "ops": "CPU ops", "runtime": "runtime calls"}
    parts = [f"{n:,} {what[key]}" for key, n in invalid.items() if n]
    if parts:
        notes.append(f"left out for a negative, missing or non-finite duration: "
                     f"{', '.join(parts)} (totals are of the valid ones)")
    return notes


def _build(path: Path, col: _Collector, header: dict[str, Any], rank_default: int,
           counts: ReadCounts) -> KinetoTrace:
    import pandas as pd

    from profilers.parsers.kernel_table import make_kernel_table

    names = np.array(list(col.names), dtype=object)
    k = {key: _cat(v, np.int64) for key, v in col.k.items()}
    o = {key: _cat(v, np.int64) for key, v in col.o.items()}
    r = {key: _cat(v, np.int64) for key, v in col.r.items()}
    an = {key: _cat(v, np.int64) for key, v in col.a.items()}
    for d in (k, o, r, an):
        for key in ("ts", "dur", "flops"):
            if key in d:
                d[key] = d[key].astype(np.float64, copy=False)
    invalid: dict[str, int] = {}
    keep_k = _valid_durations(k)
    invalid["kernels"] = int((~keep_k).sum())
    if invalid["kernels"]:
        k = _keep_rows(k, keep_k)
    for key, d in (("ops", o), ("runtime", r)):
        keep = _valid_durations(d)
        invalid[key] = int((~keep).sum())
        if invalid[key]:
            d.update(_keep_rows(d, keep))
    dist = header.get("distributedInfo")
    rank = dist.get("rank") if isinstance(dist, dict) else None
    rank = rank if type(rank) is int and -(2**62) < rank < 2**62 else rank_default

    op_row = _link_ops(k, o, r)
    has_op = op_row >= 0
    op_name_ids = np.where(has_op, o["name"][np.maximum(op_row, 0)] if len(o["name"]) else 0, -1)
    none = np.array(None, dtype=object)  # np.where's stubs take no bare None
    op_name = np.where(has_op, names[np.maximum(op_name_ids, 0)] if len(names) else none, none)
    flops = np.where(has_op, o["flops"][np.maximum(op_row, 0)] if len(o["flops"]) else np.nan, np.nan)

    grids, blocks = _launch_objects(col.launches)
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
        "rank": _same_int(rank, len(order)),
        "start_ns": start[order],
        "dur_ns": _ns(k["dur"])[order],
        "grid": grids[k["launch"][order]],
        "block": blocks[k["launch"][order]],
        "registers": _masked_int(k["regs"][order]),
        "shared_mem": _masked_int(k["smem"][order]),
        "correlation": _masked_int(k["corr"][order]),
        "op_name": op_name[order],
        "flops": flops_sorted,
    }, source="torch")

    dims, types, concrete, texts = _recorded_columns(o["recorded"], col.recorded)
    ops = pd.DataFrame({
        "name": _names_cat(o["name"], names),
        "start_ns": _ns(o["ts"]),
        "dur_ns": _ns(o["dur"]),
        "external_id": _masked_int(o["ext"]),
        "flops": pd.array(o["flops"], dtype="Float64"),
        "input_dims": _texts_cat(dims, texts),
        # JSON text as recorded (record_shapes): "Input type" and "Concrete Inputs".
        "input_types": _texts_cat(types, texts),
        "concrete_inputs": _texts_cat(concrete, texts),
        "rank": _same_int(rank, len(o["ext"])),
    }, copy=False)
    runtime = pd.DataFrame({
        "name": _names_cat(r["name"], names),
        "start_ns": _ns(r["ts"]),
        "dur_ns": _ns(r["dur"]),
        "correlation": _masked_int(r["corr"]),
        "external_id": _masked_int(r["ext"]),
        "pid": _masked_int(r["pid"]),
        "rank": _same_int(rank, len(r["ext"])),
        "thread": _masked_int(r["thread"]),  # pid * 2**32 + tid: annotation ranges' key
    }, copy=False)
    annotations = _annotations(an, names, rank)
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
        "skipped_events": counts.skipped,
        "invalid_events": {"skipped": counts.skipped, "args_dropped": counts.bad_args,
                           **{f"{key}_bad_duration": n for key, n in invalid.items()}},
        "notes": _invalid_notes(counts, invalid),
    }
    return KinetoTrace(kernels, ops, runtime, props, meta, annotations)


def _annotations(an: dict[str, np.ndarray], names: np.ndarray, rank: int) -> pd.DataFrame:
    """The annotation ranges: a CPU range's thread is pid * 2**32 + tid (as the runtime
    frame's), a GPU range's device its track's pid (Kineto puts the device id there)."""
    import pandas as pd

    from profilers.parsers._kineto_columns import ANNOTATION_KIND_NAMES
    from profilers.parsers.ranges import ranges_frame

    start = _ns(an["ts"])
    kinds = pd.Categorical.from_codes(an["kind"].astype(np.int8), categories=ANNOTATION_KIND_NAMES)
    pid = _masked_int(an["pid"])
    gpu = np.asarray(kinds == "gpu_user_annotation")
    frame = ranges_frame(_names_cat(an["name"], names), start, start + _ns(an["dur"]), kinds,
                         thread=pd.array(np.where(gpu, None, _masked_int(an["thread"])),
                                         dtype="Int64"),
                         device=pd.array(np.where(gpu, pid, None), dtype="Int64"))
    frame["rank"] = pd.array([rank] * len(frame), dtype="Int64")
    return frame


def _load_file(path: Path, rank_default: int = 0) -> KinetoTrace:
    path = require_file(path, "Kineto trace")
    col, header, counts = collect(path)
    import_pandas()
    return _build(path, col, header, rank_default, counts)


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
    from profilers.parsers.kernel_table import concat_kernel_tables

    ranks = [t.meta["rank"] for t in traces]
    p = path
    return KinetoTrace(
        kernels=concat_kernel_tables([t.kernels for t in traces]),
        ops=_concat_frames([t.ops for t in traces]),
        runtime=_concat_frames([t.runtime for t in traces]),
        annotations=_concat_frames([t.annotations for t in traces if t.annotations is not None]),
        device_properties=traces[0].device_properties,
        meta={"path": str(p), "size": sum(t.meta["size"] for t in traces), "ranks": ranks,
              "files": [t.meta for t in traces],
              "baseTimeNanoseconds": traces[0].meta["baseTimeNanoseconds"],
              "schemaVersion": traces[0].meta["schemaVersion"],
              "notes": [f"{Path(t.meta['path']).name}: {n}" for t in traces
                        for n in t.meta.get("notes", [])]},
    )


def _concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    out = pd.concat([f.astype({"name": object}) for f in frames], ignore_index=True)
    out["name"] = pd.Categorical(out["name"])
    if "kind" in out:  # annotation ranges
        out["kind"] = pd.Categorical(out["kind"].astype(object))
    for column in ("input_dims", "input_types", "concrete_inputs"):
        if column in out:
            out[column] = pd.Categorical(out[column].astype(object))
    return out
