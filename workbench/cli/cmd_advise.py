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
import sys
from pathlib import Path
from typing import Any

from workbench.cli.output import write_output
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


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_advise(args: argparse.Namespace) -> int:
    from workbench.api.advise import findings
    from workbench.api.analysis import analyze_session
    from workbench.api.sessions import get_session, open_store
    from workbench.export.advice_md import finding_lines

    if args.timeout is not None and args.timeout <= 0:
        raise WorkbenchError(f"--timeout must be positive, got {args.timeout:g}", "e.g. --timeout 60")
    store = open_store(args.home)
    record = get_session(store, args.id)
    analysis = analyze_session(store, record)
    found = findings(analysis)
    print(f"advice for session {record.id} ({len(found)} finding(s), rule-based):")
    for i, f in enumerate(found, 1):
        print("\n".join(finding_lines(i, f, markdown=False)))
    if not found:
        print("  no rule fired on this run's measurements")
    answer, failure = None, None
    if args.llm:
        answer, failure = _llm(args, store, record, analysis)
    if args.json:
        from workbench.export.json_export import dumps

        doc = {"session": record.id, "findings": [f.to_dict() for f in found],
               "llm_advice": answer.to_dict() if answer is not None else None,
               "llm_error": failure}
        write_output(args.json, dumps(doc))
    return 0


def _llm(args: argparse.Namespace, store: Any, record: Any, analysis: Any) -> tuple[Any, str | None]:
    from workbench.api import advise

    unavailable = advise.llm_unavailable()
    if unavailable:
        msg = f"LLM advice skipped: {unavailable}; the rule-based advice is above"
        print(msg, file=sys.stderr)
        return None, msg
    model = args.model or advise.default_model()
    request = advise.llm_request(record, analysis, model, allow_paths=args.allow_paths)
    print(f"\nThe request below would be sent to {advise.llm_endpoint()}; the API key goes in "
          "a header and is not shown.")
    print(term_text(advise.request_text(request)))
    if not args.yes and not _confirm("Send it? [y/N] "):
        msg = "LLM advice not sent (not confirmed; pass --yes to send without asking)"
        print(msg, file=sys.stderr)
        return None, msg
    print(f"\nLLM advice ({term_line(model)}):", flush=True)
    stream = TermStream()  # the answer is foreign text: no escape sequence reaches the terminal

    def show(chunk: str) -> None:
        sys.stdout.write(stream.feed(chunk))
        sys.stdout.flush()

    answer, failure = advise.ask_llm(store, record, request, on_text=show,
                                     timeout_s=args.timeout)
    sys.stdout.write(stream.flush())
    if failure:
        print(f"\nLLM advice failed: {failure}; the rule-based advice is above", file=sys.stderr)
        return None, failure
    print(f"\n(stored with session {record.id})", file=sys.stderr)
    return answer, None
