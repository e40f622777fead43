"""The same run through the CLI and through the app (Pilot), on the real core: both faces go
through ``workbench.api.runs`` (issue 18: the app's form started ncu runs with 5 repeats and
2 warm-ups while the CLI used 1 and 1), so the same choices give the same spec, a tiny run on
the CPU gives the same deterministic figures, and both faces read the same stored numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Select

from profilers import registry
from profilers.base import Capability
from sessions.records import RunStatus
from sessions.store import SessionStore
from tests.functional.conftest import wait_until
from workbench.cli import main
from workbench.tui.app import make_app
from workbench.tui.screens.live import LiveRunScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.screens.setup import RunSetupScreen
from workbench.tui.settings import Settings

pytestmark = pytest.mark.anyio


async def _app_run(home: Path, profiler: str = "timer", timeout: float = 300) -> str:
    """Press Run on the setup form with its defaults (and ``profiler``); the session id."""
    app = make_app(Settings(), home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunSetupScreen))
        if profiler != "timer":
            app.screen.query_one("#profiler", Select).value = profiler
            await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) or (
            isinstance(app.screen, LiveRunScreen) and app.screen.finished), timeout=timeout)
        screen = app.screen
        if isinstance(screen, ResultsScreen):
            return screen.record.id
        assert isinstance(screen, LiveRunScreen) and screen.record is not None, \
            str(screen.query_one("#live-status").render())
        return screen.record.id


def _cli_run(home: Path, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "cli.json"
    assert main(["--home", str(home), "run", "--quiet", "--json", str(out), *args]) == 0
    return json.loads(out.read_text())["record"]


@pytest.mark.torch
async def test_cli_and_app_run_the_same_spec_and_agree(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    cli_record = _cli_run(home, tmp_path)  # `run` with every default: dense / tiny / L0 / timer
    app_id = await _app_run(home)
    store = SessionStore(home)
    from_cli, from_app = store.get(cli_record["id"]), store.get(app_id)
    assert from_app.status is RunStatus.OK and from_cli.status is RunStatus.OK
    assert from_app.spec == from_cli.spec  # the same defaults: repeat 5, warm-up 2, no overrides
    assert (from_app.spec.repeat, from_app.spec.warmup, from_app.spec.params) == (5, 2, {})
    # What does not depend on the clock is identical: the seed's model, tokens and parity.
    for field in ("max_rel_err", "top1_agreement", "tokens_compared", "ok"):
        assert from_app.parity.get(field) == from_cli.parity.get(field), field
    assert from_app.details["shape"] == from_cli.details["shape"]
    assert from_app.layers_applied == from_cli.layers_applied
    assert from_app.metrics.get("tokens_per_step") == from_cli.metrics.get("tokens_per_step")
    assert from_app.metrics["latency_ms"]["n"] == from_cli.metrics["latency_ms"]["n"] == 5
    # The app's session read through the CLI: the very numbers the app stored.
    capsys.readouterr()
    assert main(["--home", str(home), "show", app_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"] == json.loads(json.dumps(from_app.metrics))
    assert shown["spec"] == from_cli.spec.to_dict()


@pytest.mark.parametrize("profiler", ["ncu", "nsys"])
async def test_replaying_profilers_get_the_same_defaults_in_both_faces(
        tmp_path: Path, profiler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One measured repeat after one warm-up under ncu / nsys, whichever face starts it (the
    tools are absent here: the wrapper's check says available, the child is not started)."""
    started = []

    def record_only(spec, store, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        started.append(spec)
        record = store.new_run(spec)
        record.status = RunStatus.OK
        store.save(record)
        return record

    monkeypatch.setattr(registry.ProfilerEntry, "check", lambda self: Capability(True))
    monkeypatch.setattr("profilers.runner.run", record_only)
    home = tmp_path / "home"
    _cli_run(home, tmp_path, "--profiler", profiler)
    await _app_run(home, profiler)
    cli_spec, app_spec = started
    assert (cli_spec.repeat, cli_spec.warmup) == (app_spec.repeat, app_spec.warmup) == (1, 1)
    assert app_spec == cli_spec
