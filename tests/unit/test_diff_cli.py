"""`diff` of two artifacts (the real H100 trace and an edited copy): verdict, kernel deltas,
appeared / disappeared kernels, the CI gate exit code and bad input."""

from __future__ import annotations

import json
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


def test_artifact_against_itself_is_within_noise(h100_fixtures: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(h100_fixtures / "torch_trace.json")
    rc = main(["--home", str(tmp_path), "diff", trace, trace, "--fail-on-regression", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "verdict: within noise — speedup 1.000x" in out
    assert "no confidence interval" in out  # an artifact has no repeats


def test_slowed_artifact_regresses_with_exact_kernel_deltas(
        slowed: tuple[Path, Path, dict], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base, cand, doc = slowed
    base_doc = json.loads(base.read_text())
    out_json = tmp_path / "diff.json"
    rc = main(["--home", str(tmp_path), "diff", str(base), str(cand),
               "--fail-on-regression", "5", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "verdict: regressed" in text
    assert "## Appeared kernels (1)" in text and "flash_attention_renamed_kernel" in text
    assert "## Disappeared kernels (1)" in text
    diff = json.loads(out_json.read_text())["diff"]
    total = lambda d: sum(e["dur"] for e in d["traceEvents"]  # noqa: E731
                          if e.get("cat") in ("kernel", "gpu_memset", "gpu_memcpy"))
    assert diff["speedup"] == pytest.approx(total(base_doc) / total(doc), rel=1e-6)
    gemm = {k["name"]: k for k in diff["kernels"] if k["name"].startswith("nvjet")}
    assert len(gemm) == 3
    grew = sum(k["delta_ns"] for k in gemm.values())
    assert grew == pytest.approx(_kernel_us(base_doc, lambda n: n.startswith("nvjet")) * 1000,
                                 abs=3)
    assert all(k["status"] == "both" and k["delta_pct"] == pytest.approx(100, abs=0.1)
               for k in gemm.values())
    # The gate does not fire below the slowdown, and the reverse direction is an improvement.
    assert main(["--home", str(tmp_path), "diff", str(base), str(cand),
                 "--fail-on-regression", "1000"]) == 0
    capsys.readouterr()
    assert main(["--home", str(tmp_path), "diff", str(cand), str(base)]) == 0
    assert "verdict: improved" in capsys.readouterr().out


def test_unknown_session_is_one_line_exit_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "diff", "nope-a", "nope-b"]) == 2
    err = capsys.readouterr().err
    assert "no session 'nope-a'" in err and len(err.strip().splitlines()) == 1
