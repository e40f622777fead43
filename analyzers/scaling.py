"""Sweeps and scaling studies: where a throughput curve bends (the knee) and how well a run
scales over GPUs. Pure functions over plain numbers; None where a value is missing."""

from __future__ import annotations

from collections.abc import Sequence


def knee_index(values: Sequence[float | None], min_gain: float = 0.05) -> int | None:
    """The knee of a rising curve sampled at successive sweep points (Kneedle on the points
    spaced evenly, as sweeps usually double the parameter): the point farthest above the
    chord from the first to the last point, in normalized units. None when the curve does
    not rise by at least ``min_gain`` (relative) overall, has missing values, or has fewer
    than three points."""
    if len(values) < 3 or any(v is None for v in values):
        return None
    ys = [float(v) for v in values]  # type: ignore[arg-type]
    lo, hi = min(ys), max(ys)
    if hi <= 0 or (hi - lo) / hi < min_gain or ys[-1] <= ys[0]:
        return None
    n = len(ys) - 1
    gaps = [(y - lo) / (hi - lo) - i / n for i, y in enumerate(ys)]
    best = max(range(1, n), key=lambda i: gaps[i])
    return best if gaps[best] > 0 else None


def scaling_efficiency(gpus: Sequence[int], throughput: Sequence[float | None]
                       ) -> list[float | None]:
    """Per point: throughput / (gpus / gpus[0] * throughput[0]) — 1.0 is linear scaling."""
    if not gpus or throughput[0] is None or not throughput[0]:
        return [None] * len(gpus)
    base, base_gpus = float(throughput[0]), gpus[0]  # type: ignore[arg-type]
    return [None if t is None else float(t) / (base * g / base_gpus)
            for g, t in zip(gpus, throughput, strict=True)]


def speedups(values: Sequence[float | None]) -> list[float | None]:
    """Each value over the first (None where either is missing or the first is 0)."""
    first = values[0] if values else None
    return [None if v is None or not first else float(v) / float(first) for v in values]
