from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sessions.store import SessionStore
from tests.functional.fakes import FakeCore, write_run
from workbench.app import WorkbenchApp, make_app
from workbench.settings import Settings
from workloads.spec import RunSpec

BASELINE_ID = "20250101-120000-aaaaaa"
CANDIDATE_ID = "20250101-120500-bbbbbb"


def seed_store(home: Path, rows: int) -> Path:
    """Two finished runs with fixed ids and times (snapshots must not change run to run)."""
    store = SessionStore(home)
    write_run(store, RunSpec(layers=["L0"]), rows, BASELINE_ID, 1_735_732_800.0)
    write_run(store, RunSpec(layers=["L0", "L1"]), rows, CANDIDATE_ID, 1_735_733_100.0)
    return home


@pytest.fixture
def seeded_home(tmp_path: Path) -> Path:
    return seed_store(tmp_path, 100_000)


@pytest.fixture
def small_home(tmp_path: Path) -> Path:
    """Seeded like ``seeded_home`` with 5k kernels a run: snapshots show only the top rows."""
    return seed_store(tmp_path, 5_000)


@pytest.fixture
def app_factory() -> Callable[..., WorkbenchApp]:
    def build(home: Path, core: FakeCore | None = None, **settings: object) -> WorkbenchApp:
        core = core or FakeCore()
        return make_app(Settings(**settings), home, services=core.services())  # type: ignore[arg-type]

    return build


async def wait_until(pilot, predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            await pilot.pause()
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # async tests run through anyio's pytest plugin (no pytest-asyncio needed)


def screen_text(app: WorkbenchApp) -> str:
    """The screen as plain text lines (from the SVG screenshot), to assert on what is shown."""
    svg = app.export_screenshot()
    lines: dict[int, dict[int, str]] = {}
    pattern = (r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
               r'clip-path="url\(#[^)]*-line-(\d+)\)">(.*?)</text>')
    for match in re.finditer(pattern, svg):
        lines.setdefault(int(match.group(2)), {})[round(float(match.group(1)) / 12.2)] = \
            html.unescape(match.group(3))
    out = []
    for number in sorted(lines):
        buffer: list[str] = []
        for column, chunk in sorted(lines[number].items()):
            buffer.extend(" " * max(column - len(buffer), 0))
            buffer[column:column + len(chunk)] = list(chunk)
        out.append("".join(buffer).replace("\xa0", " ").rstrip())
    return "\n".join(out)
