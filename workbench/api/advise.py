"""Advice, for both faces: the rule findings of an analysis, and the opt-in LLM request —
built from structured metrics and the findings (no source, paths or host names unless
allowed), shown in full before anything is sent, streamed, and stored with the session
(``record.llm_advice``: text, model, token counts, the request's hash; never the key)."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analyzers.advice.findings import Finding
from analyzers.run_analysis import RunAnalysis
from sessions.records import RunRecord
from sessions.store import SessionStore
from workloads.errors import LLMError


def findings(analysis: RunAnalysis) -> list[Finding]:
    """The rule findings, ranked (each with the measurement behind it)."""
    return list(analysis.advice)


def llm_endpoint() -> str:
    return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"


def llm_unavailable() -> str | None:
    """Why an LLM request cannot be sent now (no API key), else None: asked before the
    request is shown, so nobody consents to something that cannot go out."""
    from analyzers.advice.llm import api_key

    if not api_key():
        return "no API key (set ANTHROPIC_API_KEY)"
    return None


def default_model() -> str:
    from analyzers.advice.llm import LLMSettings

    return LLMSettings().model


def scrub_terms() -> tuple[str, ...]:
    """Host and user names and the home folder: replaced in the payload unless paths are
    allowed."""
    terms = {socket.gethostname(), socket.getfqdn(), str(Path.home())}
    try:
        terms.add(getpass.getuser())
    except Exception:
        pass
    return tuple(t for t in terms if t and t not in ("localhost", "/"))


def llm_request(record: RunRecord, analysis: RunAnalysis, model: str | None = None,
                allow_paths: bool = False) -> dict[str, Any]:
    """The Messages API request body for one session (what is shown and then sent)."""
    from analyzers.advice.payload import build_payload, build_request

    payload = build_payload(findings(analysis), analysis=analysis, record=record,
                            allow_paths=allow_paths, scrub=() if allow_paths else scrub_terms())
    return build_request(payload, model=model or default_model())


def request_text(request: dict[str, Any]) -> str:
    """The request, readable and complete: its envelope as JSON, then the user message's text
    verbatim (the JSON payload inside it would otherwise print as one escaped string)."""
    envelope = {k: v for k, v in request.items() if k != "messages"}
    text = request["messages"][0]["content"][0]["text"]
    return (f"request (Messages API):\n{json.dumps(envelope, indent=1)}\n"
            f"user message text:\n{text}\n--- end of request ---")


def store_llm_answer(store: SessionStore, record_id: str, request: dict[str, Any],
                     answer: Any) -> RunRecord:
    """Keep the answer with the session (re-read the record first: keep others' changes)."""
    record = store.get(record_id)
    record.llm_advice = {
        **answer.to_dict(), "created_at": time.time(),
        "payload_sha256": hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest(),
    }
    store.save(record)
    return record


def ask_llm(store: SessionStore, record: RunRecord, request: dict[str, Any],
            on_text: Callable[[str], None] | None = None,
            timeout_s: float | None = None) -> tuple[Any, str | None]:
    """Send ``request`` (after consent), stream chunks to ``on_text``, store the answer.
    Returns (answer or None, one-line failure or None); the app calls it from a worker."""
    from analyzers.advice.llm import LLMSettings, stream_advice

    settings = LLMSettings(model=request["model"])
    if timeout_s is not None:
        settings.timeout_s = timeout_s
    try:
        answer = stream_advice(request, on_text=on_text, settings=settings)
    except LLMError as exc:
        return None, f"{exc.message} [{exc.kind}]"
    store_llm_answer(store, record.id, request, answer)
    return answer, None
