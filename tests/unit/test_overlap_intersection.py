"""analyzers.overlap.intersection_ns (vectorized) against a point-by-point count."""

from __future__ import annotations

import numpy as np

from analyzers.overlap import intersection_ns, merge_intervals


def test_intersection_equals_a_point_count():
    rng = np.random.default_rng(16)
    for _ in range(300):
        n, m = rng.integers(0, 30, size=2)
        s1, s2 = rng.integers(0, 400, n), rng.integers(0, 400, m)
        a = merge_intervals(s1, s1 + rng.integers(0, 50, n))
        b = merge_intervals(s2, s2 + rng.integers(0, 50, m))
        in_a, in_b = np.zeros(500, bool), np.zeros(500, bool)
        for s, e in zip(*a, strict=True):
            in_a[s:e] = True
        for s, e in zip(*b, strict=True):
            in_b[s:e] = True
        want = int((in_a & in_b).sum())
        assert intersection_ns(a, b) == intersection_ns(b, a) == want
