"""The README's "JSON export" table documents every key `analyze --json` writes, and the
roofline points carry the documented fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> tuple[set[str], str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## JSON export", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys |= {k.rstrip("[]") for k in re.findall(r"`([a-z_\[\]]+)`", first)}
    return keys, section


@pytest.mark.parametrize("artifact", ["torch_trace.json", "ncu_raw.csv"])
def test_analyze_json_keys_are_documented(artifact: str, h100_fixtures: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a.json"
    assert main(["--home", str(tmp_path), "analyze", str(h100_fixtures / artifact),
                 "--json", str(out)]) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    documented, section = _documented()
    assert set(data) - {"hta"} <= documented, set(data) - documented
    if data["roofline"]:
        row = data["roofline"][0]
        for field in row:  # every per-kernel field is documented
            assert f"`{field}`" in section, field
        assert len({r["name"] for r in data["roofline"]}) == len(data["roofline"])  # per kernel
    if data["budget"]:
        for field in data["budget"]:
            assert f"`{field}`" in section or f"`{field}[]`" in section, field
        for field in data["budget"]["lines"][0]:
            assert f"`{field}`" in section, field
