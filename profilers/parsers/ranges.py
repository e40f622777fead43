"""The annotation-ranges frame every parser gives beside its KernelTable (``.annotations``):
NVTX ranges of an nsys file, a Kineto trace's user_annotation / gpu_user_annotation (and
profiler ``overhead``) events. analyzers.regions attributes GPU time to them; the
speed-of-light budget finds its steps in them.

Columns: name (categorical), start_ns, end_ns, dur_ns (Int64), kind (categorical: "nvtx",
"user_annotation", "gpu_user_annotation", "overhead" — a kind containing "gpu" is a range on
the GPU timeline), thread (Int64: the thread that opened it, <NA> when unknown), device
(Int64: a GPU range's device, else <NA>).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

RANGE_COLUMNS = ("name", "start_ns", "end_ns", "dur_ns", "kind", "thread", "device")


def _int_array(values: Any, n: int) -> pd.arrays.IntegerArray:
    if values is None:
        return pd.array([None] * n, dtype="Int64")
    if isinstance(values, pd.arrays.IntegerArray):
        return values
    return pd.array(values, dtype="Int64")


def ranges_frame(name: Any, start_ns: Any, end_ns: Any, kind: Any, thread: Any = None,
                 device: Any = None) -> pd.DataFrame:
    """A ranges frame from columns (``kind`` a str for all rows or one per row)."""
    names = name if isinstance(name, pd.Categorical) else pd.Categorical(list(name))
    n = len(names)
    start, end = _int_array(start_ns, n), _int_array(end_ns, n)
    kinds = (pd.Categorical([kind] * n) if isinstance(kind, str)
             else kind if isinstance(kind, pd.Categorical) else pd.Categorical(list(kind)))
    return pd.DataFrame({"name": names, "start_ns": start, "end_ns": end,
                         "dur_ns": end - start, "kind": kinds,
                         "thread": _int_array(thread, n), "device": _int_array(device, n)},
                        copy=False)


def empty_ranges() -> pd.DataFrame:
    return ranges_frame([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), "nvtx")
