from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("AIPERF_FIXTURES", ROOT.parent / "shared" / "fixtures" / "h100"))


@pytest.fixture(scope="session")
def h100_fixtures() -> Path:
    """Real artifacts captured on an H100 (../shared/fixtures/h100 beside the checkout)."""
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES} (set AIPERF_FIXTURES)"
    return FIXTURES
