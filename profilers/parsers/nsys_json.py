"""Nsight Systems JSON export (``nsys export --type json``) -> KernelTable + runtime + NVTX.

The export is newline-delimited JSON: one protobuf message per line, in NVIDIA's words
("JSON and Text Format Description", nsys-exporter docs). Events look like
``{"Type":79,"CudaEvent":{"startNs":"140564259","endNs":"140619331","correlationId":745,
"deviceId":1,"streamId":"7","kernel":{"demangledName":"316",...}}}`` — 64-bit numbers are
strings, names are ids into the string table; ``"memcpy"`` / ``"memset"`` take the place of
``"kernel"`` for copies. CUDA API calls are ``TraceProcessEvent`` (name id, correlationId,
globalTid), NVTX ranges ``NvtxEvent`` (Timestamp, EndTimestamp, Text, GlobalTid). The string
table comes as one ``{"data":[...]}`` line (index = id) or, with ``--separate-strings``, as
``{"type":"String","id":"3720","value":"..."}`` lines; either may come before or after the
events, so names are resolved at the end.

Read in 8 MB blocks cut at line ends and decoded with msgspec into Structs that declare only
the fields used; lines of other types (sched, OS runtime, diagnostics) cost a skipped key.
A value of the wrong type is <NA> (counted in ``meta["notes"]``), never 0.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from profilers.parsers._io import open_maybe_gzip, require_file
from profilers.parsers._sqlite_columns import MISSING
from profilers.parsers.kernel_table import make_kernel_table
from profilers.parsers.nsys_sqlite import (
    COPY_KINDS,
    CORR_MASK,
    NVTX_RANGE_TYPES,
    PID_MASK,
    NsysTrace,
    _unique_correlations,
)
from profilers.parsers.ranges import empty_ranges, ranges_frame
from workloads.errors import WorkbenchError

BLOCK = 8 << 20
Num = int | str | float | None  # the export writes 64-bit integers as strings


class Kernel(msgspec.Struct, gc=False):
    demangledName: Num = None  # noqa: N815 (the export's field names)
    shortName: Num = None  # noqa: N815
    gridX: Num = None  # noqa: N815
    gridY: Num = None  # noqa: N815
    gridZ: Num = None  # noqa: N815
    blockX: Num = None  # noqa: N815
    blockY: Num = None  # noqa: N815
    blockZ: Num = None  # noqa: N815
    registersPerThread: Num = None  # noqa: N815
    staticSharedMemory: Num = None  # noqa: N815
    dynamicSharedMemory: Num = None  # noqa: N815


class Copy(msgspec.Struct, gc=False):
    copyKind: Num = None  # noqa: N815


class CudaEvent(msgspec.Struct, gc=False):
    startNs: Num = None  # noqa: N815
    endNs: Num = None  # noqa: N815
    correlationId: Num = None  # noqa: N815
    deviceId: Num = None  # noqa: N815
    streamId: Num = None  # noqa: N815
    globalPid: Num = None  # noqa: N815
    kernel: Kernel | None = None
    memcpy: Copy | None = None
    memset: dict[str, Any] | None = None


class ApiEvent(msgspec.Struct, gc=False):
    startNs: Num = None  # noqa: N815
    endNs: Num = None  # noqa: N815
    correlationId: Num = None  # noqa: N815
    name: Num = None
    globalTid: Num = None  # noqa: N815


class NvtxEvent(msgspec.Struct, gc=False):
    Type: Num = None
    Timestamp: Num = None
    EndTimestamp: Num = None
    Text: str | None = None
    TextId: Num = None
    GlobalTid: Num = None


class Line(msgspec.Struct, gc=False):
    CudaEvent: CudaEvent | None = None
    TraceProcessEvent: ApiEvent | None = None
    NvtxEvent: NvtxEvent | None = None
    data: list[Any] | None = None  # the string table, index = id
    type: str | None = None  # "String" lines with --separate-strings
    id: Num = None
    value: Any = None


_DECODER = msgspec.json.Decoder(Line)


def _int(v: Num) -> int:
    """An exported integer (int or decimal string) or MISSING."""
    if type(v) is int:
        return v if abs(v) < 2**62 else MISSING
    if isinstance(v, str):
        try:
            n = int(v)
        except ValueError:
            return MISSING
        return n if abs(n) < 2**62 else MISSING
    return MISSING


def _pid(global_id: Num) -> int:
    """The process part (bits 24-47) of nsys's serialized globalPid / globalTid, or 0."""
    v = _int(global_id)
    return 0 if v == MISSING or v < 0 else (v >> 24) & PID_MASK


def _correlations(cols: _Columns) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and runtime correlation ids, unique per process as in the SQLite reader."""
    packed = []
    for corr, pid in ((cols.k["corr"], cols.k["pid"]), (cols.r["corr"], cols.r["pid"])):
        c, p = _arr(corr), _arr(pid)
        ok = (c != MISSING) & (c >= 0) & (c <= CORR_MASK)
        packed.append(np.where(ok, p * (CORR_MASK + 1) + np.where(ok, c, 0), MISSING))
    _unique_correlations(*packed)
    return packed[0], packed[1]


class _Columns:
    def __init__(self) -> None:
        self.k: dict[str, list[int]] = {c: [] for c in (
            "start", "end", "corr", "pid", "device", "stream", "name", "short", "kind", "copy",
            "gx", "gy", "gz", "bx", "by", "bz", "regs", "ssmem", "dsmem")}
        self.r: dict[str, list[int]] = {c: [] for c in ("start", "end", "corr", "name", "thread",
                                                        "pid")}
        self.n: dict[str, list[Any]] = {c: [] for c in ("start", "end", "thread", "text", "text_id")}
        self.strings: dict[int, str] = {}
        self.bad_lines = 0

    def add(self, line: Line) -> None:
        if line.CudaEvent is not None:
            self._activity(line.CudaEvent)
        elif line.TraceProcessEvent is not None:
            e = line.TraceProcessEvent
            r = self.r
            r["start"].append(_int(e.startNs))
            r["end"].append(_int(e.endNs))
            r["corr"].append(_int(e.correlationId))
            r["name"].append(_int(e.name))
            r["thread"].append(_int(e.globalTid))
            r["pid"].append(_pid(e.globalTid))
        elif line.NvtxEvent is not None:
            v = line.NvtxEvent
            end = _int(v.EndTimestamp)
            if end == MISSING or (v.Type is not None and _int(v.Type) not in NVTX_RANGE_TYPES):
                return  # marks and domain/category records are not ranges
            n = self.n
            n["start"].append(_int(v.Timestamp))
            n["end"].append(end)
            n["thread"].append(_int(v.GlobalTid))
            n["text"].append(v.Text)
            n["text_id"].append(_int(v.TextId))
        elif line.data is not None:
            self.strings.update((i, s) for i, s in enumerate(line.data) if isinstance(s, str))
        elif line.type == "String" and isinstance(line.value, str) and _int(line.id) != MISSING:
            self.strings[_int(line.id)] = line.value

    def _activity(self, e: CudaEvent) -> None:
        if e.kernel is not None:
            kind, kern = 0, e.kernel
        elif e.memcpy is not None:
            kind, kern = 1, None
        elif e.memset is not None:
            kind, kern = 2, None
        else:
            return  # synchronization / event records: not GPU work
        k = self.k
        k["start"].append(_int(e.startNs))
        k["end"].append(_int(e.endNs))
        k["corr"].append(_int(e.correlationId))
        k["pid"].append(_pid(e.globalPid))
        k["device"].append(_int(e.deviceId))
        k["stream"].append(_int(e.streamId))
        k["kind"].append(kind)
        k["copy"].append(_int(e.memcpy.copyKind) if e.memcpy is not None else MISSING)
        vals = ([kern.demangledName, kern.shortName, kern.gridX, kern.gridY, kern.gridZ,
                 kern.blockX, kern.blockY, kern.blockZ, kern.registersPerThread,
                 kern.staticSharedMemory, kern.dynamicSharedMemory] if kern is not None
                else [None] * 11)
        for key, v in zip(("name", "short", "gx", "gy", "gz", "bx", "by", "bz", "regs",
                           "ssmem", "dsmem"), vals, strict=True):
            k[key].append(_int(v))


def _lines(path: Path) -> Any:
    """Blocks of whole lines (bytes)."""
    with open_maybe_gzip(path) as fh:
        rest = b""
        while True:
            block = fh.read(BLOCK)
            if not block:
                if rest.strip():
                    yield rest
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1:]
            yield block[: cut + 1]


def _decode_block(block: bytes, cols: _Columns) -> None:
    try:
        lines = _DECODER.decode_lines(block)
    except (msgspec.ValidationError, msgspec.DecodeError):
        lines = []
        for raw in block.splitlines():  # slow path: keep the good lines, count the rest
            if not raw.strip():
                continue
            try:
                lines.append(_DECODER.decode(raw))
            except (msgspec.ValidationError, msgspec.DecodeError):
                cols.bad_lines += 1
    for line in lines:
        cols.add(line)


def _arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64) if values else np.empty(0, dtype=np.int64)


def _masked(values: np.ndarray) -> pd.arrays.IntegerArray:
    mask = values == MISSING
    return pd.arrays.IntegerArray(np.where(mask, 0, values), mask)


def _dims(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> list[tuple[int, int, int] | None]:
    return [None if MISSING in (a, b, c) else (a, b, c)
            for a, b, c in zip(x.tolist(), y.tolist(), z.tolist(), strict=True)]


def _kernels(cols: _Columns, notes: list[str], corr: np.ndarray) -> pd.DataFrame:
    k = {key: _arr(v) for key, v in cols.k.items()}
    k["corr"] = corr
    if not len(k["start"]):
        return make_kernel_table({}, source="nsys")
    strings = cols.strings
    names = []
    for kind, name, short, copy in zip(k["kind"].tolist(), k["name"].tolist(),
                                        k["short"].tolist(), k["copy"].tolist(), strict=True):
        if kind == 1:
            names.append(f"Memcpy {COPY_KINDS.get(copy, 'Unknown')}")
        elif kind == 2:
            names.append("Memset (Device)")
        else:
            names.append(strings.get(name) or strings.get(short) or "<unnamed>")
    start, end = k["start"], k["end"]
    ok = (start != MISSING) & (end != MISSING) & (end >= start)
    dur = np.where(ok, end - start, MISSING)
    bad = int((~ok).sum())
    if bad:
        notes.append(f"{bad:,} of {len(dur):,} GPU activities have no valid start/end (a "
                     "non-integer value such as text, or an end before the start): their "
                     "durations are null and left out of every total")
    smem_known = (k["ssmem"] != MISSING) | (k["dsmem"] != MISSING)
    smem = np.where(smem_known, np.where(k["ssmem"] == MISSING, 0, k["ssmem"])
                    + np.where(k["dsmem"] == MISSING, 0, k["dsmem"]), MISSING)
    order = np.argsort(np.where(start == MISSING, np.iinfo(np.int64).max, start), kind="stable")
    kinds = np.array(["kernel", "memcpy", "memset"], dtype=object)[k["kind"]]
    grid, block = _dims(k["gx"], k["gy"], k["gz"]), _dims(k["bx"], k["by"], k["bz"])
    return make_kernel_table({
        "name": pd.Categorical(np.array(names, dtype=object)[order]),
        "kind": pd.Categorical(kinds[order]),
        "start_ns": _masked(start[order]), "dur_ns": _masked(dur[order]),
        "device": _masked(k["device"][order]), "stream": _masked(k["stream"][order]),
        "correlation": _masked(k["corr"][order]),
        "grid": [grid[i] for i in order], "block": [block[i] for i in order],
        "registers": _masked(k["regs"][order]), "shared_mem": _masked(smem[order]),
    }, source="nsys")


def _runtime(cols: _Columns, corr: np.ndarray) -> pd.DataFrame:
    r = {key: _arr(v) for key, v in cols.r.items()}
    r["corr"] = corr
    ok = (r["start"] != MISSING) & (r["end"] != MISSING) & (r["end"] >= r["start"])
    names = [cols.strings.get(i, "<unnamed>") for i in r["name"].tolist()]
    return pd.DataFrame({
        "name": pd.Categorical(names), "start_ns": _masked(r["start"]),
        "dur_ns": _masked(np.where(ok, r["end"] - r["start"], MISSING)),
        "correlation": _masked(r["corr"]), "thread": _masked(r["thread"])})


def _nvtx(cols: _Columns) -> pd.DataFrame:
    n = cols.n
    if not n["start"]:
        return empty_ranges()
    labels = [t if isinstance(t, str) else cols.strings.get(i, "<unnamed>")
              for t, i in zip(n["text"], n["text_id"], strict=True)]
    return ranges_frame(pd.Categorical(labels), _masked(_arr(n["start"])),
                        _masked(_arr(n["end"])), "nvtx", thread=_masked(_arr(n["thread"])))


def load_nsys_json(path: str | os.PathLike[str]) -> NsysTrace:
    p = require_file(path, "nsys JSON export")
    cols = _Columns()
    for block in _lines(p):
        _decode_block(block, cols)
    if not cols.k["start"] and not cols.r["start"] and not cols.strings:
        raise WorkbenchError(f"{p}: no Nsight Systems events found in this JSON",
                             "export with: nsys export --type json report.nsys-rep")
    notes: list[str] = []
    if cols.bad_lines:
        notes.append(f"{cols.bad_lines:,} lines of the JSON export could not be read and were "
                     "skipped")
    k_corr, r_corr = _correlations(cols)
    kernels = _kernels(cols, notes, k_corr)
    notes.append("an nsys JSON export names no GPU model: export to SQLite "
                 "(nsys export --type sqlite) for the device name and roofline ceilings")
    return NsysTrace(kernels, _runtime(cols, r_corr), _nvtx(cols), {
        "path": str(p), "size": os.path.getsize(p), "device_properties": [], "notes": notes})
