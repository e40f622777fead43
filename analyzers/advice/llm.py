"""The Anthropic client wrapper: the only module under analyzers/ that does network I/O, and
imported only when the user asks for LLM advice (the SDK is imported inside the calls).

The key comes only from ``ANTHROPIC_API_KEY`` (or the ``keyring`` package, service
"aiperf-workbench", user "anthropic", when installed). It is handed to the SDK and nowhere else:
never logged, never stored, never part of an error message. Failures are one ``LLMError`` with a
``kind`` (no_key | auth | rate_limit | timeout | network | api) and a one-line message.

Settings: model ``AIPERF_LLM_MODEL`` (default below), timeout ``AIPERF_LLM_TIMEOUT`` seconds,
retries ``AIPERF_LLM_RETRIES``; the SDK's own ``ANTHROPIC_BASE_URL`` overrides the endpoint.
The timeout is one deadline for the whole answer, retries included: the SDK's own retries are
off (each would restart its timeout: `--timeout 2` took 8.9 s) and ours happen only while the
deadline leaves room, before any text was shown.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workloads.errors import LLMError

DEFAULT_MODEL = "claude-sonnet-4-6"  # not on the SDK's deprecation list (sonnet-4-5 ends 2026-11-30)
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 2
KEYRING_SERVICE, KEYRING_USER = "aiperf-workbench", "anthropic"


@dataclass
class LLMSettings:
    model: str = field(default_factory=lambda: os.environ.get("AIPERF_LLM_MODEL") or DEFAULT_MODEL)
    timeout_s: float = field(default_factory=lambda: _env_float("AIPERF_LLM_TIMEOUT", DEFAULT_TIMEOUT_S))
    max_retries: int = field(default_factory=lambda: int(_env_float("AIPERF_LLM_RETRIES", DEFAULT_RETRIES)))
    base_url: str | None = None  # None: the SDK default or ANTHROPIC_BASE_URL


@dataclass
class LLMAnswer:
    """What is kept of a reply: the text and its bookkeeping. No key, no headers."""

    text: str
    model: str
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "model": self.model, "stop_reason": self.stop_reason,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


def api_key() -> str | None:
    """ANTHROPIC_API_KEY, else the keyring entry when the keyring package is installed."""
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if key:
        return key
    try:
        import keyring  # optional
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, KEYRING_USER) or None
    except Exception:  # a locked or absent backend is "no key"
        return None


def _client(key: str, settings: LLMSettings, timeout_s: float | None = None) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key=key, base_url=settings.base_url,
                               timeout=settings.timeout_s if timeout_s is None else timeout_s,
                               max_retries=0)


def _retryable(exc: Exception) -> bool:
    """Worth another attempt: the connection failed, the API is rate limiting or overloaded."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return False  # the deadline is what timed out
    if isinstance(exc, (anthropic.APIConnectionError, anthropic.RateLimitError)):
        return True
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500


def _as_llm_error(exc: Exception, settings: LLMSettings) -> LLMError:
    import anthropic

    if isinstance(exc, anthropic.AuthenticationError):
        return LLMError("auth", "the API rejected the key (HTTP 401): check ANTHROPIC_API_KEY")
    if isinstance(exc, anthropic.PermissionDeniedError):
        return LLMError("auth", "the key may not use this model (HTTP 403)")
    if isinstance(exc, anthropic.RateLimitError):
        return LLMError("rate_limit", "rate limited by the API (HTTP 429): try again later")
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMError("timeout", f"no answer within {settings.timeout_s:g} s (timeout)")
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMError("network", "cannot reach the Anthropic API (network error)")
    if isinstance(exc, anthropic.NotFoundError):
        return LLMError("api", f"model {settings.model!r} not found (HTTP 404): set --model")
    if isinstance(exc, anthropic.APIStatusError):
        return LLMError("api", f"the API answered HTTP {exc.status_code}")
    return LLMError("api", f"LLM request failed ({type(exc).__name__})")


def iter_advice(request: dict[str, Any], settings: LLMSettings | None = None,
                key: str | None = None, result: list[LLMAnswer] | None = None) -> Iterator[str]:
    """Stream the answer to ``request`` (payload.build_request) as text chunks. When it is done,
    the LLMAnswer is appended to ``result`` (if given). Raises LLMError."""
    settings = settings or LLMSettings()
    key = key or api_key()
    if not key:
        raise LLMError("no_key", "no API key: set ANTHROPIC_API_KEY to use --llm")
    body = dict(request)
    body["model"] = settings.model
    import anthropic  # noqa: F401  (seconds on a busy machine: not part of the wait)

    deadline = time.monotonic() + settings.timeout_s
    attempt, shown = 0, False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LLMError("timeout", f"no answer within {settings.timeout_s:g} s (timeout)")
        try:
            client = _client(key, settings, timeout_s=remaining)
            with client.messages.stream(**body) as stream:
                for text in stream.text_stream:
                    shown = True
                    yield text
                    if time.monotonic() > deadline:
                        raise LLMError("timeout", f"the answer did not finish within "
                                       f"{settings.timeout_s:g} s (timeout)")
                final = stream.get_final_message()
            break
        except LLMError:
            raise
        except Exception as exc:  # the SDK's errors, mapped to one line without the key
            backoff = min(0.5 * 2 ** attempt, 8.0)
            if (shown or attempt >= settings.max_retries or not _retryable(exc)
                    or time.monotonic() + backoff >= deadline):
                raise _as_llm_error(exc, settings) from None
            attempt += 1
            time.sleep(backoff)
    text = "".join(b.text for b in final.content if getattr(b, "type", None) == "text")
    usage = getattr(final, "usage", None)
    if result is not None:
        result.append(LLMAnswer(text=text, model=str(getattr(final, "model", settings.model)),
                                stop_reason=getattr(final, "stop_reason", None),
                                input_tokens=getattr(usage, "input_tokens", None),
                                output_tokens=getattr(usage, "output_tokens", None)))


def stream_advice(request: dict[str, Any], on_text: Callable[[str], None] | None = None,
                  settings: LLMSettings | None = None, key: str | None = None) -> LLMAnswer:
    """Callback form of ``iter_advice``: ``on_text`` gets each chunk as it arrives (call it
    from a worker thread in the app); returns the whole answer. Raises LLMError."""
    result: list[LLMAnswer] = []
    for chunk in iter_advice(request, settings=settings, key=key, result=result):
        if on_text is not None:
            on_text(chunk)
    return result[0]
