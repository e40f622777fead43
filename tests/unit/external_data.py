"""Where the tests find public artifacts fetched from other projects.

Data files fetched from public repositories are kept out of commits (the search tool's rule:
only under the shared area); their ``<file>.source.json`` sidecars — source repo, path, commit,
licence and the truth computed independently with the standard library — are committed in
tests/data/external/. A test looks for the file in tests/data/external/<sub>/ (should the lead
commit it), then in ../shared/external/<sub>/ beside the checkout (or $AIPERF_EXTERNAL/<sub>),
and skips without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLACES = (ROOT / "tests" / "data" / "external", ROOT.parent / "shared" / "external",
          *([Path(os.environ["AIPERF_EXTERNAL"])] if os.environ.get("AIPERF_EXTERNAL") else []))


def external(sub: str, name: str) -> Path:
    for place in PLACES:
        path = place / sub / name
        if path.is_file():
            return path
    pytest.skip(f"public artifact {sub}/{name} not present (see tests/data/external/{sub}/"
                f"{name}.source.json for its source)")


def truth(sub: str, name: str) -> dict[str, Any]:
    side = ROOT / "tests" / "data" / "external" / sub / f"{name}.source.json"
    return json.loads(side.read_text())["truth"]
