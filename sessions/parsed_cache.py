"""The parsed-artifact cache (``runs/<id>/cache/<artifact>.parsed.msgpack``) in a format that
cannot run code when read.

The cache used to be a pickle, and ``report`` unpickled it: a session folder copied from a
colleague ran whatever its cache said. This one is MessagePack (msgspec) holding only data —
numbers, strings, byte buffers of fixed numeric dtypes, lists and maps — and is rebuilt
column by column into DataFrames with an allow-list of dtypes. Every load is validated (format,
version, the artifact's name, size and modification time, every column's length); anything
unexpected means "no cache": the artifact is parsed again and the cache rewritten.

Encodable: the fields of a dataclass (``ParsedArtifact``) that are DataFrames with a default
RangeIndex and columns of numpy numeric/bool, pandas nullable, string, categorical or object
(plain values, tuples) dtype, or plain values (dicts, lists, tuples, scalars). Anything else
is not cached (``Uncacheable``), never pickled.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from workloads.atomic import write_bytes_atomic
from workloads.errors import CorruptCache, Uncacheable

FORMAT = "aiperf-parsed-artifact"
VERSION = 4  # 4: ParsedArtifact.annotations, runtime thread ids (regions)
SUFFIX = ".parsed.msgpack"
_NUMPY_KINDS = "biuf"  # bool, signed, unsigned, float: fixed-size buffers only
_MASKED = {
    **{name: pd.arrays.IntegerArray for name in
       ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")},
    "Float32": pd.arrays.FloatingArray, "Float64": pd.arrays.FloatingArray,
    "boolean": pd.arrays.BooleanArray,
}


def cache_path(run_dir: Path, artifact: Path) -> Path:
    return run_dir / "cache" / f"{artifact.name}{SUFFIX}"


def _source(artifact: Path) -> dict[str, Any]:
    """What ties a cache to one version of its artifact (a folder: its newest file)."""
    info = artifact.stat()
    size, mtime = info.st_size, info.st_mtime_ns
    if artifact.is_dir():
        for child in sorted(artifact.rglob("*")):
            if child.is_file():
                child_info = child.stat()
                size += child_info.st_size
                mtime = max(mtime, child_info.st_mtime_ns)
    return {"name": artifact.name, "size": size, "mtime_ns": mtime}


def save(path: Path, artifact: Path, parsed: Any) -> bool:
    """Write ``parsed`` as the cache of ``artifact``; False (nothing written) when it holds
    something the format does not store."""
    if not dataclasses.is_dataclass(parsed) or isinstance(parsed, type):
        return False
    try:
        fields = {f.name: _encode(getattr(parsed, f.name)) for f in dataclasses.fields(parsed)}
        payload = msgspec.msgpack.encode({"format": FORMAT, "version": VERSION,
                                          "type": type(parsed).__name__,
                                          "source": _source(artifact), "fields": fields})
    except (Uncacheable, msgspec.EncodeError, OverflowError):
        return False
    write_bytes_atomic(path, payload)
    return True


def load(path: Path, artifact: Path, cls: type) -> Any:
    """The cached ``cls`` instance for ``artifact``; raises CorruptCache for any file that is
    stale, foreign, damaged or not of this format."""
    try:
        doc = msgspec.msgpack.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise CorruptCache(f"unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CorruptCache("not this format or version")
    if doc.get("type") != cls.__name__ or doc.get("source") != _source(artifact):
        raise CorruptCache("written for another artifact or an older version of it")
    fields = doc.get("fields")
    names = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(fields, dict) or set(fields) != names:
        raise CorruptCache("fields differ from this version's")
    try:
        return cls(**{name: _decode(value) for name, value in fields.items()})
    except CorruptCache:
        raise
    except Exception as exc:  # a crafted file: wrong lengths, types, dtypes
        raise CorruptCache(f"{type(exc).__name__}: {exc}") from None


# ---- plain values: every container is a one-key map naming its kind ------------------------
def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    if value is pd.NA:
        return {"na": 0}
    if isinstance(value, pd.DataFrame):
        return {"frame": _encode_frame(value)}
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return {"list": [_encode(v) for v in value]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    raise Uncacheable(type(value).__name__)


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise CorruptCache("unexpected value")
    (kind, body), = value.items()
    if kind == "na":
        return pd.NA
    if kind == "frame":
        return _decode_frame(body)
    if not isinstance(body, list):
        raise CorruptCache(f"{kind}: not a list")
    if kind == "list":
        return [_decode(v) for v in body]
    if kind == "tuple":
        return tuple(_decode(v) for v in body)
    if kind == "dict":
        return {_decode(k): _decode(v) for k, v in body}
    raise CorruptCache(f"unknown kind {kind!r}")


# ---- frames -----------------------------------------------------------------------------
def _encode_frame(frame: pd.DataFrame) -> dict[str, Any]:
    index = frame.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        raise Uncacheable("index")
    return {"rows": len(frame), "attrs": _encode(dict(frame.attrs)),
            "columns": [[_encode(name), _encode_column(frame[name])]
                        for name in frame.columns]}


def _decode_frame(body: Any) -> pd.DataFrame:
    rows = body["rows"]
    if not isinstance(rows, int) or rows < 0:
        raise CorruptCache("row count")
    columns = {}
    for name, column in body["columns"]:
        series = _decode_column(column)
        if len(series) != rows:
            raise CorruptCache("a column's length differs from the row count")
        columns[_decode(name)] = series
    frame = pd.DataFrame(columns, index=pd.RangeIndex(rows))
    attrs = _decode(body["attrs"])
    if not isinstance(attrs, dict):
        raise CorruptCache("attrs")
    frame.attrs.update(attrs)
    return frame


def _encode_column(column: pd.Series | pd.Index) -> dict[str, Any]:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(column.cat.codes if isinstance(column, pd.Series) else column.codes)
        return {"type": "category", "ordered": bool(dtype.ordered),
                "codes": codes.astype("<i4").tobytes(),
                "categories": _encode_column(pd.Series(dtype.categories))}
    if isinstance(dtype, pd.StringDtype):
        na_is_nan = isinstance(dtype.na_value, float) and math.isnan(dtype.na_value)
        return {"type": "string", "storage": dtype.storage, "na": "nan" if na_is_nan else "NA",
                "values": [None if pd.isna(v) else str(v) for v in column]}
    if str(dtype) in _MASKED:
        numpy_dtype = dtype.numpy_dtype  # type: ignore[union-attr]
        return {"type": "masked", "dtype": str(dtype),
                "data": column.to_numpy(dtype=numpy_dtype, na_value=0).astype(
                    numpy_dtype.newbyteorder("<")).tobytes(),
                "mask": np.asarray(column.isna(), dtype=bool).tobytes()}
    if isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_KINDS:
        little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        return {"type": "numpy", "dtype": little.str,
                "data": np.ascontiguousarray(column.to_numpy(), dtype=little).tobytes()}
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return {"type": "object", "values": [_encode(v) for v in column]}
    raise Uncacheable(f"dtype {dtype}")


def _decode_column(column: Any) -> pd.Series:
    kind = column["type"]
    if kind == "numpy":
        dtype = np.dtype(str(column["dtype"]))
        if dtype.kind not in _NUMPY_KINDS:
            raise CorruptCache(f"dtype {dtype} not allowed")
        return pd.Series(np.frombuffer(_bytes(column["data"]), dtype=dtype).copy())
    if kind == "masked":
        name = str(column["dtype"])
        if name not in _MASKED:
            raise CorruptCache(f"dtype {name} not allowed")
        numpy_dtype = pd.api.types.pandas_dtype(name).numpy_dtype  # type: ignore[union-attr]
        values = np.frombuffer(_bytes(column["data"]), dtype=numpy_dtype.newbyteorder("<"))
        mask = np.frombuffer(_bytes(column["mask"]), dtype=bool)
        if len(values) != len(mask):
            raise CorruptCache("mask length")
        return pd.Series(_MASKED[name](values.astype(numpy_dtype), mask.copy()))
    if kind == "string":
        storage, na = column["storage"], column["na"]
        if storage not in ("python", "pyarrow") or na not in ("nan", "NA"):
            raise CorruptCache("string dtype")
        values = column["values"]
        if not all(v is None or isinstance(v, str) for v in values):
            raise CorruptCache("string values")
        dtype = pd.StringDtype(storage, na_value=np.nan if na == "nan" else pd.NA)
        return pd.Series(values, dtype=dtype)
    if kind == "category":
        categories = _decode_column(column["categories"])
        codes = np.frombuffer(_bytes(column["codes"]), dtype="<i4")
        if len(codes) and (codes.max() >= len(categories) or codes.min() < -1):
            raise CorruptCache("category codes out of range")
        return pd.Series(pd.Categorical.from_codes(codes.astype(np.int32),
                                                   categories=pd.Index(categories),
                                                   ordered=bool(column["ordered"])))
    if kind == "object":
        values = column["values"]
        array = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # element by element: tuples stay scalars
            array[i] = _decode(value)
        return pd.Series(array, dtype=object)
    raise CorruptCache(f"column type {kind!r}")


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise CorruptCache("expected a byte buffer")
    return value


def remove_legacy(run_dir: Path, artifact: Path) -> None:
    """Delete the old pickle cache unread (it may have been crafted; it is never opened)."""
    legacy = run_dir / "cache" / f"{artifact.name}.parsed.pkl"
    try:
        if legacy.is_file() and not legacy.is_symlink():
            os.unlink(legacy)
    except OSError:
        pass
