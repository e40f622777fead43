"""The run form (issue 19): focus at start, a focus you can see, no invisible Tab stop, the Run
button on screen at 80x24, input the run would refuse refused in the form by the API's
check_spec (nothing started), profilers that are not installed marked with the reason, typed
repeats kept across presets, the extra fields (warm-up, device, label, profiler options)."""

from __future__ import annotations

import pytest
from textual.color import Color
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets._select import SelectCurrent

from profilers.base import Capability
from tests.functional.conftest import screen_text, wait_until
from tests.functional.fakes import FakeCore
from workbench.api.services import Services
from workbench.tui.screens.setup import RunSetupScreen

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("pinned_catalog")]
NCU_MISSING = "Nsight Compute (ncu) is not installed or not on PATH"


async def _ready(app, pilot) -> RunSetupScreen:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                     and app.screen.probe is not None)
    return app.screen


async def test_the_workload_list_has_the_focus_at_start(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _ready(app, pilot)
        assert app.focused is screen.query_one("#workloads", OptionList)
        await pilot.press("down")  # the arrow keys work without a Tab first
        assert screen.workload == "gemm"
        assert "Workload" in screen_text(app).splitlines()[2]  # the form starts at its top


async def test_focus_is_visible_and_every_tab_stop_is_a_field(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _ready(app, pilot)
        backdrop = Color.parse(str(screen.styles.background.hex)) if screen.styles.background \
            else Color(0, 0, 0)
        stops = []
        for _ in range(40):
            await pilot.press("tab")
            widget = app.focused
            assert widget is not None
            if widget.id in stops:
                break
            stops.append(widget.id)
            assert widget.id and not widget.id.startswith("setup-"), widget  # no container
            region = widget.region
            assert region.height >= 1 and app.screen.region.contains_region(region), widget.id
            painted = widget.query_one(SelectCurrent) if isinstance(widget, Select) else widget
            if not isinstance(widget, OptionList):
                background = painted.styles.background
                # far from the screen's background: not one grey step (234 vs 235)
                assert sum(abs(a - b) for a, b in zip(background.rgb, backdrop.rgb,
                                                      strict=True)) > 200, widget.id
        assert stops[-1] == "workloads" and "run-button" in stops
        assert {"param-warmup", "device", "text-label", "text-profiler_options"} <= set(stops)


async def test_the_run_button_is_on_screen_at_80x24(tmp_path, app_factory) -> None:
    app = app_factory(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _ready(app, pilot)
        button = screen.query_one("#run-button")
        assert app.screen.region.contains_region(button.region)
        assert "Run (ctrl+r)" in screen_text(app)
        assert "↓ more fields: Tab" in screen_text(app)  # Parameters go on below the fold
        screen.query_one("#text-profiler_options").focus()  # the last field: scrolled to
        await wait_until(pilot, lambda: "↓ more fields" not in screen_text(app))


async def test_a_shape_the_preset_cannot_take_is_refused_before_the_child(
        tmp_path, app_factory) -> None:
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _ready(app, pilot)
        screen.query_one("#param-prompt_len", Input).value = "512"
        screen.query_one("#param-new_tokens", Input).value = "256"
        await pilot.pause()
        problem = str(screen.query_one("#run-check", Static).content)
        assert "prompt_len + new_tokens (768) exceeds max_seq (64)" in problem
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunSetupScreen) and core.specs == []  # nothing ran
        assert any(n.title == "Cannot run" and "exceeds max_seq" in n.message
                   for n in app._notifications)
        screen.query_one("#param-prompt_len", Input).value = "32"  # the preset's: not sent
        screen.query_one("#param-new_tokens", Input).value = "16"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(core.specs))
        assert core.specs and core.specs[0].params == {"new_tokens": 16}


async def test_a_profiler_that_is_not_installed_is_marked_and_refused(
        tmp_path, app_factory, monkeypatch) -> None:
    monkeypatch.setattr(Services, "profilers", lambda self: {
        "timer": Capability(True), "ncu": Capability(False, NCU_MISSING + "; install it")})
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _ready(app, pilot)
        screen.query_one("#profiler", Select).value = "ncu"
        await pilot.pause()
        assert NCU_MISSING in str(screen.query_one("#profiler-reason", Static).content)
        assert NCU_MISSING in str(screen.query_one("#run-check", Static).content)
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunSetupScreen) and core.specs == []
        await pilot.click("#profiler")
        await pilot.pause()
        assert "ncu ✗ not available" in screen_text(app)  # marked in the list itself


async def test_typed_repeats_survive_a_preset_change_and_extra_fields_reach_the_spec(
        tmp_path, app_factory) -> None:
    core = FakeCore()
    app = app_factory(tmp_path, core)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _ready(app, pilot)
        screen.query_one("#param-repeat", Input).value = "7"
        screen.query_one("#preset", Select).value = "small"
        await pilot.pause()
        assert screen.query_one("#param-repeat", Input).value == "7"
        assert screen.query_one("#param-batch", Input).value == "1"  # the preset's own
        screen.query_one("#param-warmup", Input).value = "0"
        screen.query_one("#device", Select).value = "cpu"
        screen.query_one("#text-label", Input).value = "baseline before the fix"
        screen.query_one("#text-profiler_options", Input).value = "kernel_regex=gemm count=3"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(core.specs))
        spec = core.specs[0]
        assert (spec.preset, spec.repeat, spec.warmup, spec.device) == ("small", 7, 0, "cpu")
        assert spec.label == "baseline before the fix"
        assert spec.profiler_options == {"kernel_regex": "gemm", "count": 3}


async def test_a_rerun_fills_the_form_once_with_the_stored_overrides(tmp_path, app_factory) -> None:
    from workbench.tui.screens.messages import EditRun
    from workloads.spec import RunSpec

    core = FakeCore()
    app = app_factory(tmp_path, core)
    stored = RunSpec(layers=["L0", "L1"], params={"batch": 4}, repeat=3, warmup=1,
                     device="cpu", label="before", profiler_options={"kernel_regex": "gemm"})
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(app, pilot)
        app.post_message(EditRun(stored))
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen)
                         and app.screen.prefill is stored and app.screen.probe is not None)
        form = app.screen
        assert form.query_one("#param-batch", Input).value == "4"
        assert form.query_one("#text-profiler_options", Input).value == "kernel_regex=gemm"
        await pilot.press("ctrl+r")  # as stored: the same spec runs
        await wait_until(pilot, lambda: bool(core.specs))
        assert core.specs[0] == stored
        form.query_one("#preset", Select).value = "small"
        await pilot.pause()
        assert form.query_one("#param-batch", Input).value == "1"  # the preset's now
