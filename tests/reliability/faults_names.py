"""The hostile-names part of the fault-injection pass (tests/reliability/faults.py): a trace
whose kernel and device names carry control characters, escape sequences, HTML and image
links, through the CLI's exports and terminal output, and every Markdown renderer fed the
same strings directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.reliability.faults import Tally, env_for, note_output
from tests.reliability.tools import ROOT, hostile_trace, terminal_clean


def hostile_names(base: Path, tally: Tally) -> None:
    """Hostile names through the CLI's exporters and terminal output, and every Markdown
    renderer fed the same strings directly."""
    from tests.reliability.test_injection import assert_safe_markdown

    base.mkdir(parents=True, exist_ok=True)
    trace = hostile_trace(base / "hostile.json")
    home = base / "home"
    outputs: list[tuple[str, str]] = []

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home),
                               *args], cwd=ROOT, env=env_for("hostile"), capture_output=True,
                              text=True, timeout=180)
        with tally.lock:
            tally.invocations += 1
            tally.exits[proc.returncode] += 1
        note_output(tally, " ".join(args[:2]), proc.stdout + proc.stderr)
        outputs.append((" ".join(args[:2]), proc.stdout + proc.stderr))
        return proc

    first = run("analyze", str(trace), "--save", "--export", str(base / "a.md")).stderr
    second = run("analyze", str(trace), "--save").stderr
    ids = [first.strip().split()[-1], second.strip().split()[-1]]
    run("report", ids[0], "--export", str(base / "r.md"))
    run("report", ids[0])
    run("diff", ids[0], ids[1], "--export", str(base / "d.md"))
    run("advise", ids[0])
    run("sessions", "list")
    for what, text in outputs:
        bad = terminal_clean(text.replace("\n", "").replace("\t", ""))
        if bad:
            tally.unclean_terminal.append(f"{what}: {bad}")
    exports = {name: (base / name).read_text() for name in ("a.md", "r.md", "d.md")}
    exports.update(_rendered_directly())
    for name, text in exports.items():
        tally.exports_checked += 1
        try:  # an LLM's answer may link and have headings (never embed); nothing else may
            assert_safe_markdown(text, foreign=name.endswith("llm.md"))
        except AssertionError as exc:
            tally.unsafe_markdown.append(f"{name}: {str(exc)[:200]}")


def _rendered_directly() -> dict[str, str]:
    """The Markdown renderers the CLI pass does not reach, fed hostile strings."""
    from types import SimpleNamespace

    from tests.reliability.tools import HOSTILE_DEVICE, HOSTILE_NAMES
    from workbench.export.advice_md import advice_section
    from workbench.export.hta_md import render_hta_section
    from workbench.export.sweep_md import render_scale, render_sweep

    evil = " ".join(HOSTILE_NAMES)
    row = {"point": {"batch": evil}, "status": evil, "latency_ms": 1.0, "tokens_per_s": 2.0,
           "speedup": 1.0, "run_id": evil, "knee": False}
    sweep = render_sweep(evil, ["batch"], [row], [], {"device": HOSTILE_DEVICE})
    scale = render_scale(evil, [{"gpus": 1, "status": evil, "latency_ms": 1.0,
                                 "tokens_per_s": 1.0, "speedup": 1.0, "efficiency": 1.0,
                                 "run_id": evil}], {"device": HOSTILE_DEVICE}, None)
    finding = SimpleNamespace(rule=evil, finding=evil, confidence="high", action=evil,
                              layer=evil, expected_effect=evil, evidence=[])
    advice = "\n".join(advice_section([finding], {"text": evil, "model": evil}))
    hta = render_hta_section(SimpleNamespace(
        hta_seconds=1.0, hta_version=evil, rows=[], kernel_disagreements=None,
        idle_by_category=None, launch_summary=None, overlap=None,
        errors={evil: evil}, notes=[evil]))
    rules, llm = advice.split("### LLM advice")
    return {"sweep.md": sweep, "scale.md": scale, "advice.md": rules,
            "advice-llm.md": "### LLM advice" + llm, "hta.md": hta}
