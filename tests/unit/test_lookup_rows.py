"""profilers.parsers.lookup.lookup_rows (the sort-based id lookup the parser and analyzers use
for correlation / External ids) against a dict built row by row, and the parser's
innermost-op fallback against its one-call-at-a-time definition."""

from __future__ import annotations

import numpy as np
import pytest

from profilers.parsers.kineto import _MAX_NESTING, _innermost_op
from profilers.parsers.lookup import lookup_rows


@pytest.mark.parametrize("keep", ["first", "last"])
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("keys_are", ["shuffled", "in order", "in order, distinct"])
def test_lookup_rows_equals_a_dict(keep, dtype, keys_are):
    """Keys in order (a trace's ids usually are) take a path without the sort, distinct ones
    one without the compaction of duplicates: all three give the dict's rows."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        keys = rng.integers(-5, 40, rng.integers(0, 60)).astype(dtype)
        if keys_are != "shuffled":
            keys = np.unique(keys) if keys_are.endswith("distinct") else np.sort(keys)
        wanted = rng.integers(-8, 45, rng.integers(0, 30)).astype(dtype)
        if dtype == np.float64 and len(keys):
            keys[rng.random(len(keys)) < 0.1] = np.nan  # a missing key is never found
            wanted[rng.random(len(wanted)) < 0.1] = np.nan
        table: dict = {}
        for row, key in enumerate(keys.tolist()):
            if key != key:  # NaN
                continue
            if keep == "last" or key not in table:
                table[key] = row
        want = [table.get(w, -1) if w == w else -1 for w in wanted.tolist()]
        assert lookup_rows(keys, wanted, keep=keep).tolist() == want


def test_innermost_op_equals_the_scan_back_from_each_call():
    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(1, 150))
        ops = {"ts": np.sort(rng.uniform(0, 1000, n)), "dur": rng.uniform(0, 300, n)}
        rng.shuffle(ops["ts"][: n // 3])  # not all in order
        calls = rng.uniform(-10, 1300, int(rng.integers(0, 80)))
        order = np.argsort(ops["ts"], kind="stable")
        starts, ends = ops["ts"][order], (ops["ts"] + ops["dur"])[order]
        want = []
        for ts in calls:
            j, found = int(np.searchsorted(starts, ts, side="right")) - 1, -1
            for jj in range(j, max(j - _MAX_NESTING, -1), -1):
                if ends[jj] >= ts:
                    found = int(order[jj])
                    break
            want.append(found)
        assert _innermost_op(ops, calls).tolist() == want
