"""The Advice tab on real data: rule findings for an H100 trace session, and the opt-in LLM
flow — the exact request shown first, nothing sent on "no", the answer streamed in and stored
with the session on "yes" — against a local fake of the Anthropic Messages API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions.store import SessionStore
from tests.functional.conftest import wait_until
from tests.functional.test_real_core import _open_session, _save_analysis
from tests.integration.fake_messages_api import ANSWER_CHUNKS, FakeMessagesAPI
from workbench.tui.app import make_app
from workbench.tui.screens.llm_confirm import LLMConfirmScreen
from workbench.tui.screens.results import ResultsScreen
from workbench.tui.settings import Settings

pytestmark = pytest.mark.anyio
FAKE_KEY = "sk-ant-test-advice-tab-0123456789"


def _plain(renderable) -> str:  # type: ignore[no-untyped-def]
    parts = getattr(renderable, "renderables", None)
    if parts is not None:  # a rich Group
        return "\n".join(_plain(p) for p in parts)
    return getattr(renderable, "plain", str(renderable))


def _text(app) -> str:  # type: ignore[no-untyped-def]
    """Everything the Advice tab holds (also what is scrolled out of view)."""
    return "\n".join(_plain(w.content) for w in app.screen.query("#advice Static"))


async def test_advice_tab_findings_and_opt_in_llm(tmp_path: Path, h100_fixtures: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _save_analysis(tmp_path, h100_fixtures / "torch_trace.json")
    with FakeMessagesAPI() as api:
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        app = make_app(Settings(), tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await _open_session(app, pilot, run_id)
            await pilot.press("5")
            text = _text(app)
            # the fixture's GEMMs could run in FP8; the rule cites the measurement and the
            # device's ceilings, and says what per step it can recover
            assert "evidence:" in text and "do:" in text and "FP8" in text
            assert "recover: up to" in text and "H100 SXM" in text

            await pilot.press("l")  # the request is shown; "n" sends nothing
            await wait_until(pilot, lambda: isinstance(app.screen, LLMConfirmScreen))
            shown = app.screen.request_text
            assert "findings" in shown and FAKE_KEY not in shown
            await pilot.press("n")
            await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen))
            assert api.requests == []

            await pilot.press("l")
            await wait_until(pilot, lambda: isinstance(app.screen, LLMConfirmScreen))
            await pilot.press("y")
            answer = "".join(ANSWER_CHUNKS)
            await wait_until(pilot, lambda: answer in _text(app), timeout=20)
            assert len(api.requests) == 1
            sent = api.requests[0]["raw"]
            assert FAKE_KEY not in sent and str(tmp_path) not in sent
            user_text = api.requests[0]["body"]["messages"][0]["content"][0]["text"]
            assert user_text in shown  # what was shown is what was sent

    stored = SessionStore(tmp_path).get(run_id).llm_advice
    assert stored["text"] == answer
    on_disk = (tmp_path / "runs" / run_id / "record.json").read_text()
    assert FAKE_KEY not in on_disk and json.loads(on_disk)["llm_advice"]["text"] == answer
