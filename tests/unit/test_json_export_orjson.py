"""The JSON export is serialized by orjson without a per-value Python walk, and writes exactly
what the exhaustive walk (every DataFrame to records, NaN / inf / NA to null) writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench.export.json_export as export
from workbench.api.pipeline.analysis import analyze_paths


def _reference(obj: object) -> object:
    """The old serializer: the exhaustive walk, then the standard library."""
    return json.loads(json.dumps(export._clean_deep(obj), default=str))


@pytest.mark.parametrize("artifact", ["torch_trace.json", "hf_moe_generate_small.json.gz",
                                      "ncu_raw.csv"])
def test_analysis_export_is_orjson_and_equals_the_exhaustive_walk(
        artifact: str, h100_fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, analysis = analyze_paths([h100_fixtures / artifact])
    data = export.analysis_to_dict(analysis)
    expected = _reference(data)

    def no_walk(value: object) -> object:
        raise AssertionError("the exhaustive walk ran for an ordinary analysis")

    monkeypatch.setattr(export, "_clean_deep", no_walk)
    text = export.dumps(data)
    assert json.loads(text) == expected
    assert text.endswith("}\n") and text.startswith("{\n  ")


def test_missing_values_are_null_and_odd_values_fall_back() -> None:
    frame = pd.DataFrame({
        "f": [1.5, np.nan, np.inf],
        "i": pd.array([1, None, 3], dtype="Int64"),
        "c": pd.Categorical(["a", None, "a"]),
        "o": [np.float32(2.5), pd.NA, "x"],
    })
    got = json.loads(export.dumps({"t": frame, 3: np.int64(7), "big": 2**70}))
    assert got["t"] == [{"f": 1.5, "i": 1, "c": "a", "o": 2.5},
                        {"f": None, "i": None, "c": None, "o": None},
                        {"f": None, "i": 3, "c": "a", "o": "x"}]
    assert got["3"] == 7 and got["big"] == str(2**70)
