"""Which profiler wrote this file? Decided by content (magic bytes, JSON keys, CSV header),
not by extension; and one front door, ``load_artifact``, from any artifact to a KernelTable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from profilers.parsers._io import (
    GZIP_MAGIC,
    NCU_REP_MAGIC,
    SQLITE_MAGIC,
    gunzipped_head,
    head_bytes,
    require_file,
)
from profilers.parsers.kineto import load_kineto, trace_files
from workloads.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

# pandas and the other formats' readers are imported when a file needs them: a Kineto
# trace's parse starts (and forks its worker) before pandas is loaded, and pandas loads
# while the worker parses (``_kineto_columns.collect``).

ArtifactKind = Literal["kineto", "kineto_dir", "ncu_csv", "ncu_rep", "nsys_sqlite", "nsys_json",
                       "nsys_rep"]
_PROF_LINE = re.compile(rb"^==[A-Z]+==")
# nsys export --type json: one protobuf message per line ({"Type":79,"CudaEvent":{...}}, the
# string table as {"data":[...]} or {"type":"String",...} lines)
_NSYS_JSON_LINE = re.compile(rb'^\{\s*"(?:Type"\s*:\s*\d+\s*,\s*"[A-Za-z]+Event"|data"\s*:\s*\[|'
                             rb'type"\s*:\s*"(?:String|ThreadName|Stream)")')


@dataclass
class ParsedArtifact:
    kind: ArtifactKind
    kernels: pd.DataFrame
    metrics: pd.DataFrame | None = None
    ops: pd.DataFrame | None = None
    runtime: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    annotations: pd.DataFrame | None = None  # NVTX / annotation ranges (parsers.ranges frame)


def _looks_like_ncu_csv(head: bytes) -> bool:
    """An ncu table header on some line of the head: ncu's own messages and the profiled
    program's output may come before it (ncu prints both to stdout)."""
    for line in head.splitlines():
        s = line.lstrip(b"\xef\xbb\xbf").strip()
        if s.startswith(b'"ID","Process ID"') or s.startswith(b"ID,Process ID"):
            return True
    return False


def _looks_like_nsys_json(head: bytes) -> bool:
    lines = [ln for ln in head.lstrip(b"\xef\xbb\xbf").splitlines()[:8] if ln.strip()]
    return bool(lines) and all(_NSYS_JSON_LINE.match(ln.strip()) for ln in lines[:-1] or lines)


def _looks_like_trace(head: bytes) -> bool:
    s = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if s.startswith(b"{"):
        return b'"traceEvents"' in head or b'"schemaVersion"' in head or b'"deviceProperties"' in head
    return s.startswith(b"[") and (b'"ph"' in head or s[1:].strip() in (b"", b"]"))


def detect_format(path: str | os.PathLike[str]) -> ArtifactKind:
    """The artifact kind, from the file's content; WorkbenchError when it is none we read."""
    p = Path(path)
    if p.is_dir():
        if trace_files(p):
            return "kineto_dir"
        raise WorkbenchError(f"{p}: directory holds no .json or .json.gz traces")
    p = require_file(p)
    head = head_bytes(p, 64 * 1024)
    if head.startswith(SQLITE_MAGIC):
        return "nsys_sqlite"
    if head.startswith(NCU_REP_MAGIC):
        return "ncu_rep"
    if head.startswith(GZIP_MAGIC):
        inner = gunzipped_head(p, 64 * 1024)
        if not inner:
            raise WorkbenchError(f"{p}: corrupt or truncated gzip file")
        if _looks_like_nsys_json(inner):
            return "nsys_json"
        if _looks_like_trace(inner):
            return "kineto"
        raise WorkbenchError(f"{p}: gzip file does not hold a Kineto/Chrome trace")
    if _looks_like_ncu_csv(head):
        return "ncu_csv"
    if _looks_like_nsys_json(head):
        return "nsys_json"
    if _looks_like_trace(head):
        return "kineto"
    if p.name.lower().endswith((".nsys-rep", ".qdrep")):
        return "nsys_rep"  # a binary format only nsys reads (load_artifact exports it)
    if head.lstrip().startswith(b"==") or b"==PROF==" in head or b"==ERROR==" in head:
        return "ncu_csv"  # ncu messages without a table: the CSV parser explains the failure
    raise WorkbenchError(
        f"{p}: unknown artifact format",
        "expected a Kineto trace (.json/.json.gz), ncu --csv output (either layout), an "
        ".ncu-rep, an nsys report (.nsys-rep) or its SQLite / JSON export",
    )


def load_artifact(path: str | os.PathLike[str]) -> ParsedArtifact:
    """Parse any supported artifact into a KernelTable (+ metrics / ops / runtime)."""
    kind = detect_format(path)
    if kind in ("kineto", "kineto_dir"):
        t = load_kineto(path)
        return ParsedArtifact(kind, t.kernels, None, t.ops, t.runtime,
                              {**t.meta, "device_properties": t.device_properties},
                              annotations=t.annotations)
    if kind == "ncu_csv":
        from profilers.parsers.ncu_csv import load_ncu_csv

        r = load_ncu_csv(path)
        return ParsedArtifact(kind, r.kernels, r.metrics, None, None, r.meta)
    if kind == "ncu_rep":
        from profilers.parsers.ncu_rep import load_ncu_rep

        r = load_ncu_rep(path)
        return ParsedArtifact(kind, r.kernels, r.metrics, None, None, r.meta)
    from profilers.parsers.nsys_sqlite import load_nsys_sqlite

    if kind == "nsys_json":
        from profilers.parsers.nsys_json import load_nsys_json

        n = load_nsys_json(path)
    elif kind == "nsys_rep":
        from profilers.nsys import export_sqlite

        n = load_nsys_sqlite(export_sqlite(Path(path)))
        n.meta["report"] = str(path)
    else:
        n = load_nsys_sqlite(path)
    return ParsedArtifact(kind, n.kernels, None, None, n.runtime, n.meta, annotations=n.nvtx)


def load_artifacts(paths: list[str | os.PathLike[str]]) -> ParsedArtifact:
    """Several artifacts of one kind as one (e.g. per-rank traces given one by one).

    Kineto files get ranks in the order given unless their traces name one.
    """
    if not paths:
        raise WorkbenchError("no artifact given", "pass a trace, ncu CSV/.ncu-rep or nsys SQLite")
    if len(paths) == 1:
        return load_artifact(paths[0])
    kinds = [detect_format(p) for p in paths]
    if len(set(kinds)) != 1:
        listed = ", ".join(f"{p} ({k})" for p, k in zip(paths, kinds, strict=True))
        raise WorkbenchError(f"artifacts of different kinds cannot be merged: {listed}",
                             "analyze them one at a time")
    if kinds[0] == "kineto":
        from profilers.parsers.kineto import _load_file, merge_traces

        t = merge_traces([_load_file(Path(p), rank_default=i) for i, p in enumerate(paths)],
                         Path(paths[0]).parent)
        return ParsedArtifact("kineto", t.kernels, None, t.ops, t.runtime,
                              {**t.meta, "device_properties": t.device_properties},
                              annotations=t.annotations)
    parts = [load_artifact(p) for p in paths]
    import pandas as pd

    from profilers.parsers.kernel_table import concat_kernel_tables

    metrics = [p.metrics for p in parts if p.metrics is not None]
    runtime = [p.runtime for p in parts if p.runtime is not None]
    return ParsedArtifact(
        kinds[0], concat_kernel_tables([p.kernels for p in parts]),
        pd.concat(metrics, ignore_index=True) if metrics else None, None,
        pd.concat(runtime, ignore_index=True) if runtime else None,
        {"paths": [str(p) for p in paths], "parts": [p.meta for p in parts],
         "notes": [f"{Path(p.meta.get('path', '?')).name}: {n}" for p in parts
                   for n in p.meta.get("notes", [])]})
