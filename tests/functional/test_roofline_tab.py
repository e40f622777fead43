"""The Roofline tab on the real core's analysis of the real H200 trace (best bf16 stack of
dense llama-3.1-8b; tests/functional/roofline_session): one point per kernel on axes that
cover them, a legend, why kernels are left out, and the speed-of-light budget."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from tests.functional.conftest import screen_text, wait_until
from tests.functional.roofline_session import h200_analysis, seed, services
from workbench.tui.app import make_app
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.sessions import SessionsScreen
from workbench.tui.settings import Settings
from workbench.tui.widgets.budget import BudgetView
from workbench.tui.widgets.roofline import RooflinePlot

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def _open_roofline(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    await pilot.press("f3")
    await wait_until(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.rows)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                     and app.screen.analysis is not None)
    await pilot.press("3")
    await pilot.pause()


def _text(widget: Static) -> str:
    return str(widget.content)


@pytest.mark.anyio
@pytest.mark.parametrize("size", SIZES)
async def test_roofline_and_budget_on_the_real_h200_trace(tmp_path, size) -> None:
    seed(tmp_path)
    app = make_app(Settings(), tmp_path, services=services())
    async with app.run_test(size=size) as pilot:
        await _open_roofline(pilot)
        plot = app.screen.query_one(RooflinePlot)
        assert plot.point_count == 2 and plot.unknown == 17  # GEMV + attention placed
        details = _text(app.screen.query_one("#roofline-details", Static))
        assert details.startswith("[1/2] gemv_m1_kernel")
        assert "in 387 launches" in details and "from inventory" in details
        assert "101.2% of roof" in details
        assert "17 kernel(s) have neither FLOPs nor bytes" in details
        shown = screen_text(app)
        ticks = shown.split("FLOP/byte")[0].splitlines()[-1].split()
        assert ticks[:2] == ["0.1", "1"]  # decode GEMVs (~1 FLOP/B) are on the chart
        assert "●≥10% •≥1% ·<1% of time  ◆ selected  ╱ DRAM 4.055TB/s" in shown
        budget = app.screen.query_one(BudgetView)
        assert budget._budget is h200_analysis().budget
        assert "Speed of light: 5.46 ms measured → 4.08 ms" in shown
        first = next(line for line in shown.splitlines() if line.lstrip().startswith("1 ")
                 and "Summary" not in line)  # the budget's first row, not the tab bar
        assert "772.9 µs" in first and "14.2%" in first and "cudnn_generated" in first
        assert "better attention kernel" in first  # the run has L3: the remedy, no layer
        if size[1] >= 40:
            gemv = next(line for line in shown.splitlines() if "gemv_m1_kernel  " in line)
            assert gemv.rstrip().endswith("L5-fp8")
        await pilot.press("right")
        details = _text(app.screen.query_one("#roofline-details", Static))
        assert details.startswith("[2/2] cudnn_generated") and "0.5% of roof" in details


@pytest.mark.anyio
async def test_flops_without_bytes_says_what_is_missing(tmp_path) -> None:
    """A torch run with with_flops has FLOPs and no bytes: the tab says so, and does not send
    the user to 'profile with ncu, or torch with FLOPs' (which they did)."""
    seed(tmp_path)
    app = make_app(Settings(), tmp_path, services=services(bytes_known=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_roofline(pilot)
        assert app.screen.query_one(RooflinePlot).point_count == 0
        details = _text(app.screen.query_one("#roofline-details", Static))
        assert "2 kernel(s) have FLOPs but no DRAM bytes" in details
        assert "profile with ncu, or torch with FLOPs" not in details
        assert "Speed of light: 5.46 ms measured → 4.85 ms" in screen_text(app)


@pytest.mark.parametrize("size", SIZES)
def test_roofline_tab_snapshot(snap_compare, tmp_path, size) -> None:
    seed(tmp_path)
    assert snap_compare(make_app(Settings(), tmp_path, services=services()), terminal_size=size,
                        run_before=_open_roofline)
