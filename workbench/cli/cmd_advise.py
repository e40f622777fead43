"""`advise ID`: the rule-based advice of a stored run, and (opt-in, `--llm`) an LLM's advice.

With --llm the exact request body is printed first (structured metrics and the rule findings;
no source code, file paths or host names unless --allow-paths) and sent only after a yes (or
--yes). The answer streams to the terminal and is stored with the session in
record.llm_advice (text, model, token counts, the payload's hash: never the key or the
headers). No key, no network, 401, 429, timeout: one line saying what failed, exit 0 with the
rules shown.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.export.escape import TermStream, term_line, term_text
from workloads.errors import WorkbenchError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "advise", help="rule-based advice for a session; --llm adds an LLM's (opt-in)",
        description="Print the ranked rule findings of a stored session, each with the "
        "measurement behind it. --llm also asks an Anthropic model, after showing exactly "
        "what would be sent (key from ANTHROPIC_API_KEY).")
    p.add_argument("id", help="session id (or a unique prefix / suffix)")
    p.add_argument("--llm", action="store_true", help="also ask an LLM (shows the payload first)")
    p.add_argument("--yes", action="store_true", help="send without asking for confirmation")
    p.add_argument("--model", default=None, help="model (default $AIPERF_LLM_MODEL or a built-in one)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds to wait for the answer (default $AIPERF_LLM_TIMEOUT or 60)")
    p.add_argument("--allow-paths", action="store_true",
                   help="let file paths and host names into the payload (default: scrubbed)")
    p.add_argument("--json", type=Path, metavar="FILE", help="findings (+ LLM answer) as JSON ('-' = stdout)")
    p.set_defaults(handler=cmd_advise)


def scrub_terms() -> tuple[str, ...]:
    """Host and user names and the home folder: replaced in the payload unless --allow-paths."""
    terms = {socket.gethostname(), socket.getfqdn(), str(Path.home())}
    try:
        terms.add(getpass.getuser())
    except Exception:
        pass
    return tuple(t for t in terms if t and t not in ("localhost", "/"))


def llm_request_for(record: Any, analysis: Any, model: str, allow_paths: bool = False
                    ) -> dict[str, Any]:
    """The Messages API request body for one session (what is shown and then sent)."""
    from analyzers.advice.payload import build_payload, build_request

    payload = build_payload(list(analysis.advice), analysis=analysis, record=record,
                            allow_paths=allow_paths, scrub=() if allow_paths else scrub_terms())
    return build_request(payload, model=model)


def store_llm_answer(store: Any, record_id: str, request: dict[str, Any], answer: Any) -> Any:
    """Keep the answer with the session (re-read the record first: keep others' changes)."""
    record = store.get(record_id)
    record.llm_advice = {
        **answer.to_dict(), "created_at": time.time(),
        "payload_sha256": hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest(),
    }
    store.save(record)
    return record


def llm_advice_for_session(store: Any, record: Any, analysis: Any, request: dict[str, Any],
                           on_text: Callable[[str], None] | None = None,
                           timeout_s: float | None = None) -> tuple[Any, str | None]:
    """Send ``request``, stream chunks to ``on_text``, store the answer. Returns (answer or
    None, one-line failure or None). The app calls this from a worker thread."""
    from analyzers.advice.llm import LLMSettings, stream_advice
    from workloads.errors import LLMError

    settings = LLMSettings(model=request["model"])
    if timeout_s is not None:
        settings.timeout_s = timeout_s
    try:
        answer = stream_advice(request, on_text=on_text, settings=settings)
    except LLMError as exc:
        return None, f"{exc.message} [{exc.kind}]"
    store_llm_answer(store, record.id, request, answer)
    return answer, None


def show_request(request: dict[str, Any]) -> str:
    """The request, readable and complete: its envelope as JSON, then the user message's text
    verbatim (the JSON payload inside it would otherwise print as one escaped string)."""
    envelope = {k: v for k, v in request.items() if k != "messages"}
    text = request["messages"][0]["content"][0]["text"]
    return (f"request (Messages API):\n{json.dumps(envelope, indent=1)}\n"
            f"user message text:\n{text}\n--- end of request ---")


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_advise(args: argparse.Namespace) -> int:
    from sessions.store import SessionStore
    from workbench.api.pipeline.analysis import load_run_analysis
    from workbench.export.advice_md import finding_lines

    if args.timeout is not None and args.timeout <= 0:
        raise WorkbenchError(f"--timeout must be positive, got {args.timeout:g}", "e.g. --timeout 60")
    store = SessionStore(args.home)
    record = store.get(args.id)
    analysis = load_run_analysis(store, record)
    findings = list(analysis.advice)
    print(f"advice for session {record.id} ({len(findings)} finding(s), rule-based):")
    for i, f in enumerate(findings, 1):
        print("\n".join(finding_lines(i, f, markdown=False)))
    if not findings:
        print("  no rule fired on this run's measurements")
    answer, failure = None, None
    if args.llm:
        answer, failure = _llm(args, store, record, analysis)
    if args.json:
        from workbench.export.json_export import dumps

        doc = {"session": record.id, "findings": [f.to_dict() for f in findings],
               "llm_advice": answer.to_dict() if answer is not None else None,
               "llm_error": failure}
        text = dumps(doc)
        if str(args.json) == "-":
            sys.stdout.write(text)
        else:
            from workloads.atomic import write_text_atomic

            write_text_atomic(args.json, text)
    return 0


def _llm(args: argparse.Namespace, store: Any, record: Any, analysis: Any) -> tuple[Any, str | None]:
    from analyzers.advice.llm import LLMSettings, api_key

    settings = LLMSettings()
    model = args.model or settings.model
    if not api_key():
        msg = "LLM advice skipped: no API key (set ANTHROPIC_API_KEY); the rule-based advice is above"
        print(msg, file=sys.stderr)
        return None, msg
    request = llm_request_for(record, analysis, model, allow_paths=args.allow_paths)
    endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    print(f"\nThe request below would be sent to {endpoint}; the API key goes in a header and "
          "is not shown.")
    print(term_text(show_request(request)))
    if not args.yes and not _confirm("Send it? [y/N] "):
        msg = "LLM advice not sent (not confirmed; pass --yes to send without asking)"
        print(msg, file=sys.stderr)
        return None, msg
    print(f"\nLLM advice ({term_line(model)}):", flush=True)
    stream = TermStream()  # the answer is foreign text: no escape sequence reaches the terminal

    def show(chunk: str) -> None:
        sys.stdout.write(stream.feed(chunk))
        sys.stdout.flush()

    answer, failure = llm_advice_for_session(store, record, analysis, request, on_text=show,
                                             timeout_s=args.timeout)
    sys.stdout.write(stream.flush())
    if failure:
        print(f"\nLLM advice failed: {failure}; the rule-based advice is above", file=sys.stderr)
        return None, failure
    print(f"\n(stored with session {record.id})", file=sys.stderr)
    return answer, None
