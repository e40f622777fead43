"""`diff` of two artifacts (the real H100 trace and an edited copy): verdict, kernel deltas,
appeared / disappeared kernels, the CI gate exit code and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.cli import main


def _trace(h100_fixtures: Path) -> dict:
    return json.loads((h100_fixtures / "torch_trace.json").read_text())


def _kernel_us(doc: dict, pred) -> float:
    return sum(e["dur"] for e in doc["traceEvents"]
               if e.get("cat") == "kernel" and pred(e["name"]))


@pytest.fixture()
def slowed(h100_fixtures: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    """The trace with every nvjet GEMM twice as long and the SDPA kernel renamed."""
    doc = _trace(h100_fixtures)
    for e in doc["traceEvents"]:
        if e.get("cat") == "kernel" and e["name"].startswith("nvjet"):
            e["dur"] = round(e["dur"] * 2, 3)
        elif e.get("cat") == "kernel" and "sdpa" in e["name"]:
            e["name"] = "flash_attention_renamed_kernel"
    out = tmp_path / "slowed.json"
    out.write_text(json.dumps(doc))
    return h100_fixtures / "torch_trace.json", out, doc


def test_artifact_against_itself_is_identical(h100_fixtures: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(h100_fixtures / "torch_trace.json")
    rc = main(["--home", str(tmp_path), "diff", trace, trace, "--fail-on-regression", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "verdict: identical — speedup 1.000x by total GPU time" in out
    assert "no CI; no noise floor: no repeats" in out  # an artifact has no repeats
    assert "latency median" not in out  # the figure is labelled as what it is


def test_slowed_artifact_has_exact_kernel_deltas_and_no_verdict(
        slowed: tuple[Path, Path, dict], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, cand, doc = slowed
    base_doc = json.loads(base.read_text())
    out_json = tmp_path / "diff.json"
    rc = main(["--home", str(tmp_path), "diff", str(base), str(cand),
               "--fail-on-regression", "5", "--json", str(out_json)])
    captured = capsys.readouterr()
    text = captured.out
    # One figure per side: the gate cannot tell a change from noise, so it fails closed.
    assert rc == 3
    assert "verdict: inconclusive" in text and "no repeats" in text
    assert "gate cannot decide" in captured.err
    assert "## Appeared kernels (1)" in text and "flash_attention_renamed_kernel" in text
    assert "## Disappeared kernels (1)" in text
    diff = json.loads(out_json.read_text())["diff"]
    total = lambda d: sum(e["dur"] for e in d["traceEvents"]  # noqa: E731
                          if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy"))
    assert diff["figure"] == "total GPU time"
    assert diff["speedup"] == pytest.approx(total(base_doc) / total(doc), rel=1e-6)
    assert diff["ci_low"] is None and diff["noise_floor_pct"] is None
    gemm = {k["name"]: k for k in diff["kernels"] if k["name"].startswith("nvjet")}
    assert len(gemm) == 3
    grew = sum(k["delta_ns"] for k in gemm.values())
    assert grew == pytest.approx(_kernel_us(base_doc, lambda n: n.startswith("nvjet")) * 1000,
                                 abs=3)
    assert all(k["status"] == "both" and k["delta_pct"] == pytest.approx(100, abs=0.1)
               for k in gemm.values())
    # Without a gate the diff is printed and exits 0.
    assert main(["--home", str(tmp_path), "diff", str(cand), str(base)]) == 0
    assert "verdict: inconclusive — speedup" in capsys.readouterr().out


def test_saved_analysis_sessions_gate_fails_closed_on_a_slowdown(
        h100_fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two `analyze --save` sessions, the second 10% slower: the gate said "verdict n/a" and
    exited 0; it cannot decide (no repeats) and must not pass."""
    from sessions.store import SessionStore

    doc = _trace(h100_fixtures)
    for e in doc["traceEvents"]:
        if e.get("cat") == "kernel":
            e["dur"] = round(e["dur"] * 1.10, 3)
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(doc))
    home = tmp_path / "home"
    ids = []
    for path in (h100_fixtures / "torch_trace.json", slower):
        before = {r.id for r in SessionStore(home).list()}
        assert main(["--home", str(home), "analyze", str(path), "--save"]) == 0
        (new,) = {r.id for r in SessionStore(home).list()} - before
        ids.append(new)
    capsys.readouterr()
    rc = main(["--home", str(home), "diff", *ids, "--fail-on-regression", "5"])
    captured = capsys.readouterr()
    assert rc == 3, captured.out
    assert "verdict: inconclusive" in captured.out and "total GPU time" in captured.out
    assert re.search(r"candidate (9\.\d|10\.0)% slower", captured.out)  # shown, not judged
    assert "gate cannot decide" in captured.err and "no repeats" in captured.err


def test_h200_sessions_layer_stacks_compare_and_gate(h200_home: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import H200_RUNS

    rc = main(["--home", str(h200_home), "diff", H200_RUNS["best"], H200_RUNS["L0"],
               "--fail-on-regression", "5"])
    captured = capsys.readouterr()
    assert rc == 1 and "verdict: regressed" in captured.out
    assert "regression beyond 5%" in captured.err
    assert "comparable (workload, preset, shape, dtype, step, device equal)" in captured.out
    assert "GPU time by category (per step)" in captured.out


def test_unknown_session_is_one_line_exit_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "diff", "nope-a", "nope-b"]) == 2
    err = capsys.readouterr().err
    assert "no session 'nope-a'" in err and len(err.strip().splitlines()) == 1
