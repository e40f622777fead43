"""Selecting and naming kernels of a KernelTable, for the advice rules: by category, by name
pattern, their summed time, the heaviest names, a readable core of a long C++ name."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from profilers.parsers.schema import Col


def time_ns(kt: pd.DataFrame, mask: np.ndarray) -> int:
    return int(kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)[mask].sum())


def name_mask(kt: pd.DataFrame, pattern: re.Pattern[str]) -> np.ndarray:
    names = kt[Col.NAME].astype("category")
    hits = np.array([bool(pattern.search(str(n))) for n in names.cat.categories], dtype=bool)
    codes = np.asarray(names.cat.codes)
    return np.where(codes >= 0, hits[np.clip(codes, 0, None)] if len(hits) else False, False)


def top_names(kt: pd.DataFrame, mask: np.ndarray, total_ns: int, n: int = 3
               ) -> list[tuple[str, int, float]]:
    sub = kt[mask]
    if not len(sub):
        return []
    sums = sub.groupby(sub[Col.NAME].astype(str), observed=True)[Col.DUR_NS].sum().sort_values(ascending=False)
    return [(str(k), int(v), int(v) / total_ns) for k, v in sums.head(n).items()]


def category_mask(kt: pd.DataFrame, *cats: str) -> np.ndarray:
    return np.asarray(kt[Col.CATEGORY].astype(str).isin(cats))


def short_name(name: str, width: int = 60) -> str:
    """A kernel's readable core: no "void ", no arguments, no template arguments, no
    namespaces ("void at::native::sbtopk::gatherTopK<float, ...>(...)" -> "gatherTopK")."""
    text = name[5:] if name.startswith("void ") else name
    depth, core = 0, []
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "(" and depth == 0:
            break
        elif depth == 0:
            core.append(ch)
    short = "".join(core).strip().split("::")[-1] or name
    return short if len(short) <= width else short[: width - 3] + "..."
