"""RunAnalysis.kind_totals (GPU time per activity kind, in the report) sums integer ns per
distinct kind; it must give what grouping the launches by their kind's text gives, missing
kinds and durations included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyzers.run_analysis import RunAnalysis
from profilers.parsers.kineto import load_kineto


def _by_text(kernels: pd.DataFrame) -> list[tuple[str, int]]:
    # A missing kind is no kind (pandas 2's astype(str) would call it "nan"; pandas 3 keeps it
    # missing): the launches without one are left out before grouping by the text.
    kind = kernels["kind"].astype(object)
    has = kind.notna().to_numpy()
    grouped = kernels[has].groupby(kind[has].astype(str))["dur_ns"].sum(min_count=1)
    return [(str(k), int(v)) for k, v in grouped.items() if not pd.isna(v)]


def test_kind_totals_equal_grouping_by_the_kind_text(h100_fixtures: Path) -> None:
    kernels = load_kineto(h100_fixtures / "hf_moe_generate_small.json.gz").kernels
    assert list(RunAnalysis(kernels=kernels).kind_totals().items()) == _by_text(kernels)
    rng = np.random.default_rng(7)
    for _ in range(100):
        part = kernels.iloc[rng.integers(0, len(kernels), int(rng.integers(1, 60)))].copy()
        part["kind"] = part["kind"].cat.add_categories(["zeta", "Alpha", "unused"])
        for value in (None, "zeta", "Alpha"):  # missing kinds, kinds sorting before others
            part.loc[rng.random(len(part)) < 0.2, "kind"] = value
        part.loc[rng.random(len(part)) < 0.2, "dur_ns"] = pd.NA  # a kind may have none left
        for frame in (part, part.assign(kind=part["kind"].astype(object))):
            assert list(RunAnalysis(kernels=frame).kind_totals().items()) == _by_text(frame)
