"""Selecting and naming kernels of a KernelTable, for the advice rules: by category, kind, name
pattern or parent op, their summed time, the heaviest names, a readable core of a long C++ name.

Every test runs once per distinct value (``analyzers.distinct``), not once per launch: a 1 GB
trace holds ~400k launches of a few hundred names."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analyzers.distinct import isin_mask, str_mask, value_codes
from profilers.parsers.schema import Col

if TYPE_CHECKING:
    from analyzers.advice.facts import Facts


def time_ns(kt: pd.DataFrame, mask: np.ndarray) -> int:
    return int(kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)[mask].sum())


def name_mask(kt: pd.DataFrame, pattern: re.Pattern[str]) -> np.ndarray:
    return str_mask(kt[Col.NAME], pattern.search)


def op_mask(f: Facts, test: Callable[[str], object]) -> np.ndarray:
    """Rows whose parent op's name passes ``test`` (a missing op reads as "")."""
    codes, values = f.op_names
    hits = np.array([bool(test(str(v))) for v in values] + [bool(test(""))], dtype=bool)
    return hits[codes]


def top_names(kt: pd.DataFrame, mask: np.ndarray, total_ns: int, n: int = 3
              ) -> list[tuple[str, int, float]]:
    """The ``n`` names with the most GPU time among the masked rows: (name, ns, share)."""
    if not mask.any():
        return []
    codes, names = value_codes(kt[Col.NAME])
    dur = kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)
    keep = mask & (codes >= 0)  # a launch without a name has no name to cite
    per_code = pd.Series(dur[keep]).groupby(codes[keep]).sum()
    sums: dict[str, int] = {}
    for code, ns in zip(per_code.index, per_code.to_numpy(), strict=True):
        key = str(names[code])
        sums[key] = sums.get(key, 0) + int(ns)
    # The order of a groupby by name (sorted names), then the same descending sort: ties rank
    # as they always did.
    ranked = pd.Series(sums, dtype="Int64").sort_index().sort_values(ascending=False)
    return [(str(k), int(v), int(v) / total_ns) for k, v in ranked.head(n).items()]


def category_mask(kt: pd.DataFrame, *cats: str) -> np.ndarray:
    return isin_mask(kt[Col.CATEGORY], cats)


def kind_mask(kt: pd.DataFrame, kind: str) -> np.ndarray:
    return isin_mask(kt[Col.KIND], (kind,))


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
