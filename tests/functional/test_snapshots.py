"""Snapshot tests of every screen at 80x24 and 120x40 (pytest-textual-snapshot).

Regenerate after an intended UI change with ``pytest tests/functional --snapshot-update`` and
look at the SVGs under ``__snapshots__/`` before committing them.
"""

from __future__ import annotations

import pytest
from pytest_textual_snapshot import SVGImageExtension
from textual.widgets import Log

from tests.functional.conftest import wait_until
from tests.functional.fakes import FakeCore
from workbench.api.device import DeviceProbe
from workbench.tui.screens import live as live_module
from workbench.tui.screens.live import LiveRunScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workloads import catalog
from workloads.catalog import LayerInfo

pytestmark = pytest.mark.usefixtures("pinned_catalog", "utc")


@pytest.fixture
def utc(monkeypatch):  # type: ignore[no-untyped-def]
    """Dates in the sessions list are local time: the snapshots are taken in UTC."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
A100 = DeviceProbe(cuda=True, gpu_count=1, name="NVIDIA A100-SXM4-80GB", cc=(8, 0),
                   memory_bytes=80 * 2**30)


async def _setup_ready(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                     and app.screen.probe is not None)


@pytest.mark.parametrize("size", SIZES)
def test_setup(snap_compare, tmp_path, app_factory, size) -> None:
    assert snap_compare(app_factory(tmp_path), terminal_size=size, run_before=_setup_ready)


def test_setup_unmet_requirement_disabled(snap_compare, tmp_path, app_factory,
                                          monkeypatch) -> None:
    monkeypatch.setitem(catalog.LAYERS, "L5-fp8", LayerInfo(
        "L5-fp8", 5, "FP8 matmuls", "torch._scaled_mm in e4m3", requires=("cuda", "cc>=8.9")))
    app = app_factory(tmp_path, FakeCore(probe=A100))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_setup_ready)


@pytest.mark.parametrize("size", SIZES)
def test_live_run(snap_compare, tmp_path, app_factory, size, monkeypatch) -> None:
    core = FakeCore(block=True)
    monkeypatch.setattr(live_module, "clock", lambda: 100.0)  # elapsed: the same every run

    async def start(pilot) -> None:  # type: ignore[no-untyped-def]
        await _setup_ready(pilot)
        await pilot.press("ctrl+r")
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and core.started.is_set())
        await wait_until(pilot, lambda: app.screen.query_one(Log).line_count >= 4
                         and app.screen.query_one("#live-telemetry").display)
        await pilot.pause(0.3)

    assert snap_compare(app_factory(tmp_path, core), terminal_size=size, run_before=start)


async def _shot(pilot) -> str:  # type: ignore[no-untyped-def]
    """What snap_compare stores, taken mid-session (several screens per app start)."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    return pilot.app.export_screenshot()


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_results_tabs(snapshot, small_home, app_factory, size) -> None:
    """All five Results tabs of the newest run (L0+L1), the Diff against the L0 run."""
    shots: dict[str, str] = {}
    app = app_factory(small_home)
    async with app.run_test(size=size) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and app.screen.rows)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                         and app.screen.analysis is not None)
        for tab, keys in (("summary", ()), ("kernels", ("2", "down")),
                          ("roofline", ("3", "right")), ("diff", ("4",)), ("advice", ("5",))):
            await pilot.press(*keys)
            if tab == "diff":
                verdict = app.screen.query_one("#diff-verdict")
                await wait_until(pilot, lambda v=verdict: "Verdict" in str(v.content))
            shots[tab] = await _shot(pilot)
    svg = snapshot.use_extension(SVGImageExtension)
    for tab, data in shots.items():
        assert svg(name=tab) == data, f"{tab} tab differs from its snapshot"


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_sessions_and_confirm(snapshot, small_home, app_factory, size) -> None:
    app = app_factory(small_home)
    async with app.run_test(size=size) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and app.screen.rows)
        await pilot.press("space", "down")
        listing = await _shot(pilot)
        await pilot.press("d")
        confirm = await _shot(pilot)
    svg = snapshot.use_extension(SVGImageExtension)
    assert svg(name="list") == listing
    assert svg(name="confirm") == confirm


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path, app_factory, size) -> None:
    assert snap_compare(app_factory(tmp_path), terminal_size=size, press=("f1",),
                        run_before=_setup_ready)


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_export_dialog_and_rerun_form(snapshot, small_home, app_factory, size,
                                            monkeypatch) -> None:
    """e on the results: the export dialog (its default path fixed here); ctrl+r: the form
    filled with the session's configuration."""
    from pathlib import Path

    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: Path("/home/me/perf")))
    app = app_factory(small_home)
    async with app.run_test(size=size) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen)
                         and app.screen.rows)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                         and app.screen.analysis is not None)
        await pilot.press("e")
        dialog = await _shot(pilot)
        await pilot.press("escape", "ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.probe is not None)
        form = await _shot(pilot)
    svg = snapshot.use_extension(SVGImageExtension)
    assert svg(name="export") == dialog
    assert svg(name="rerun") == form


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_confirm_before_cancelling_a_run(snapshot, tmp_path, app_factory, size,
                                               monkeypatch) -> None:
    monkeypatch.setattr(live_module, "clock", lambda: 100.0)
    core = FakeCore(block=True)
    app = app_factory(tmp_path, core)
    async with app.run_test(size=size) as pilot:
        await _setup_ready(pilot)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen)
                         and core.started.is_set())
        live = app.screen
        await wait_until(pilot, lambda: live.query_one(Log).line_count >= 4
                         and live.query_one("#live-telemetry").display)
        await pilot.pause(0.3)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not isinstance(app.screen, LiveRunScreen))
        shot = await _shot(pilot)
        await pilot.press("n")
        live.cancel()
        await wait_until(pilot, lambda: live.finished)
    assert snapshot.use_extension(SVGImageExtension)(name="quit") == shot
