"""The one percentile of the workbench (torch-free: the child, the serving load test and the
analyzers all use it, so a run's p99 means the same wherever it is computed)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method) of a sorted,
    non-empty sequence; ``fraction`` in 0..1."""
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight
