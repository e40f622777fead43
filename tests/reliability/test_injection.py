"""Defect 6: names from an artifact (kernels, the device) and the LLM's answer reached exports
and the terminal raw — a \\r split a table row, a newline made a heading, ANSI/OSC sequences set
the window title, cleared the screen, wrote the clipboard (OSC 52), made links (OSC 8), and raw
HTML and remote images passed into reports. Hostile names go through every exporter here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration import fake_messages_api
from tests.integration.fake_messages_api import FakeMessagesAPI
from tests.reliability.tools import HOSTILE_NAMES, cli, hostile_trace, terminal_clean

HOSTILE_ANSWER = ["1. Use \x1b]52;c;ZXZpbA==\x07a grouped GEMM\x1b[2J ",
                  "<script>alert(1)</script> ![x](https://evil.example/t.png)\r\n",
                  "2. \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b", "\\ done\x9b31m."]


def md_cells(line: str) -> int:
    """Unescaped pipes in a Markdown table row."""
    count, escaped = 0, False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            count += 1
    return count


def assert_safe_markdown(text: str, foreign: bool = False) -> None:
    """No row split, heading, HTML, image or control character; no link either, except in
    ``foreign`` Markdown (an LLM's answer may have links and headings, never HTML or images)."""
    assert "\r" not in text and not terminal_clean(text.replace("\n", "")), terminal_clean(text)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            width = md_cells(line)
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                assert md_cells(lines[j]) == width, f"row split: {lines[j]!r}"
                j += 1
        if not foreign:
            assert not re.match(r"#+ (a heading|pwned)", line), f"injected heading: {line!r}"
    plain = re.sub(r"\\.", "", text)  # what a renderer reads as markup: escapes removed
    assert not re.search(r"<[A-Za-z/!?]", plain), "raw HTML in the export"
    # The report's own figures (SVG files it wrote beside itself) are the only images: never
    # one a foreign name could make, nor a remote one.
    ours = re.compile(r"^!\[(Roofline|Speed-of-light budget)[^\]]*\]\([\w.-]+\.(roofline|budget)\.svg\)$")
    for line in plain.splitlines():
        if "![" in line:
            assert ours.match(line.strip()), f"an image in the export: {line!r}"
    if not foreign:
        others = "\n".join(line for line in plain.splitlines() if not ours.match(line.strip()))
        assert not re.search(r"\[[^\]\n]*\]\(", others), "a link in the export"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("hostile")
    trace = hostile_trace(folder / "hostile_trace.json")
    home = folder / "home"
    proc = cli(home, "analyze", str(trace), "--save")
    assert proc.returncode == 0, proc.stderr
    assert not terminal_clean(proc.stdout + proc.stderr), terminal_clean(proc.stdout)
    return home, trace, proc.stderr.strip().split()[-1]


def test_analyze_terminal_markdown_and_json(hostile, tmp_path: Path) -> None:
    home, trace, _ = hostile
    out_md, out_json = tmp_path / "a.md", tmp_path / "a.json"
    proc = cli(home, "analyze", str(trace), "--export", str(out_md), "--json", str(out_json),
               "--top", "30")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert terminal_clean(proc.stdout + proc.stderr) == []
    assert_safe_markdown(out_md.read_text())
    # the JSON export keeps the names exactly (JSON escapes them itself)
    names = {k["name"] for k in json.loads(out_json.read_text())["top_kernels"]}
    assert set(HOSTILE_NAMES) <= names


def test_report_of_a_saved_session(hostile, tmp_path: Path) -> None:
    home, _, run_id = hostile
    out = tmp_path / "r.md"
    proc = cli(home, "report", run_id, "--export", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert_safe_markdown(text)
    assert "H100 # pwned \\<script\\>" in text  # the device name, flattened and escaped
    shown = cli(home, "report", run_id)
    # the same report, less the figures (written only beside an exported file)
    without_figures = re.sub(r"\n!\[[^\]]*\]\([\w.-]+\.svg\)\n", "", text)
    assert terminal_clean(shown.stdout) == [] and shown.stdout == without_figures


def test_diff_of_two_hostile_sessions(hostile, tmp_path: Path) -> None:
    home, trace, run_id = hostile
    other = cli(home, "analyze", str(trace), "--save").stderr.strip().split()[-1]
    out = tmp_path / "d.md"
    proc = cli(home, "diff", run_id, other, "--export", str(out))
    assert proc.returncode == 0, proc.stderr
    assert terminal_clean(proc.stdout + proc.stderr) == []
    assert_safe_markdown(out.read_text())
    proc = cli(home, "diff", str(trace), str(Path(__file__).parents[1] / "data" / "h100" /
                                              "torch_trace.json"))
    assert proc.returncode == 0 and terminal_clean(proc.stdout) == [], proc.stderr


def test_advise_rules_and_a_hostile_llm_stream(hostile, monkeypatch) -> None:
    home, _, run_id = hostile
    monkeypatch.setattr(fake_messages_api, "ANSWER_CHUNKS", HOSTILE_ANSWER)
    env = {"AIPERF_LLM_RETRIES": "0", "AIPERF_LLM_TIMEOUT": "20",
           "ANTHROPIC_API_KEY": "sk-ant-api03-FAKE-injection-test"}
    with FakeMessagesAPI("ok") as api:
        env["ANTHROPIC_BASE_URL"] = api.base_url
        proc = cli(home, "advise", run_id, "--llm", "--yes", env=env)
    assert proc.returncode == 0, proc.stderr
    assert terminal_clean(proc.stdout + proc.stderr) == []
    assert "a grouped GEMM" in proc.stdout and "click" in proc.stdout
    report = cli(home, "report", run_id)
    assert report.returncode == 0
    section = report.stdout.split("### LLM advice", 1)[1]
    assert "&lt;script>" in section and "\\![x]" in section
    assert_safe_markdown(report.stdout, foreign=True)
    assert_safe_markdown(report.stdout.split("### LLM advice", 1)[0])


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_escapers_on_each_name(text: str) -> None:
    from workbench.export.escape import md_foreign, md_text, term_text

    cell = md_text(text)
    assert "\n" not in cell and "\r" not in cell and md_cells(cell) == 0
    assert terminal_clean(term_text(text).replace("\n", "")) == []
    assert terminal_clean(md_foreign(text).replace("\n", "")) == []


def test_stream_filter_matches_whole_text_however_it_is_cut() -> None:
    import random

    from workbench.export.escape import TermStream, term_text

    whole = "".join(HOSTILE_ANSWER)
    expected = term_text(whole)
    rng = random.Random(17)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(whole)), rng.randint(1, 12)))
        stream = TermStream()
        pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        got = "".join(stream.feed(p) for p in pieces) + stream.flush()
        assert got == expected, pieces
