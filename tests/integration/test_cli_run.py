"""The CLI end to end on CPU: real tiny runs in a real child process, stored sessions,
reports, and bad input handled as one line + exit 2."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_torch_run_report_and_reproduce(tmp_path: Path) -> None:
    home = tmp_path / "home"
    report = tmp_path / "r.md"
    proc = cli(home, "run", "--workload", "dense", "--preset", "tiny", "--profiler", "torch",
               "--layers", "L0,L1", "--export", str(report))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    text = report.read_text()
    assert "latency median" in text and "p99" in text and "tok/s" in text
    assert "## GPU time by category" in text or "## Top CPU ops" in text or "## Kernels" in text
    listing = cli(home, "sessions", "list")
    run_id = listing.stdout.splitlines()[1].split()[0]
    assert "ok" in listing.stdout.splitlines()[1]
    # the stored trace is a real gzipped Chrome trace
    run_dir = home / "runs" / run_id
    trace = json.loads(gzip.open(run_dir / "trace.json.gz").read())
    assert any(e.get("cat") == "cpu_op" for e in trace["traceEvents"])
    again = tmp_path / "r2.md"
    proc2 = cli(home, "report", run_id, "--export", str(again))
    assert proc2.returncode == 0, proc2.stderr
    assert again.read_text() == text


@pytest.mark.parametrize("args,needle", [
    (["run", "--workload", "nope"], "unknown workload"),
    (["run", "--preset", "huge"], "unknown preset"),
    (["run", "--layers", "L0,L9"], "unknown layer"),
    (["run", "--repeat", "0"], "--repeat"),
    (["report", "does-not-exist"], "no session"),
    (["analyze", "/does/not/exist.json"], "exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    line = _one_line_error(cli(tmp_path, *args))
    assert needle in line


def test_corrupt_trace_is_one_line(tmp_path: Path, h100_fixtures: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes((h100_fixtures / "torch_trace.json").read_bytes()[:5000])
    line = _one_line_error(cli(tmp_path, "analyze", str(bad)))
    assert "bad.json" in line


def test_invalid_shape_is_refused_before_a_child_starts(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--preset", "tiny", "--param", "heads=3")
    assert proc.returncode == 2, proc.stderr
    assert "must split into 3 heads" in proc.stderr and proc.stdout == ""
    assert "no sessions" in cli(tmp_path, "sessions", "list").stdout


def test_invalid_shape_found_in_child_is_exit_2_and_recorded(tmp_path: Path) -> None:
    """What only the model can check (the MoE decoder's own shape rules) is found in the
    child: still exit 2, and the session is recorded with the reason."""
    proc = cli(tmp_path, "run", "--workload", "moe", "--preset", "tiny", "--param", "top_k=99")
    assert proc.returncode == 2, proc.stderr
    assert "top_k (99) exceeds experts (64)" in proc.stdout + proc.stderr
    assert "failed" in cli(tmp_path, "sessions", "list").stdout.splitlines()[1]


def test_failing_workload_is_recorded(tmp_path: Path) -> None:
    # a batch whose KV cache cannot be allocated: torch raises inside the child
    proc = cli(tmp_path, "run", "--preset", "tiny", "--batch", "100000000")
    assert proc.returncode == 1, proc.stderr
    rows = cli(tmp_path, "sessions", "list").stdout.splitlines()
    assert "failed" in rows[1]
    run_id = rows[1].split()[0]
    record = json.loads(cli(tmp_path, "show", run_id).stdout)
    assert record["status"] == "failed" and record["error"]
    assert (tmp_path / "runs" / run_id / "run.log").read_text().strip()


def test_timeout_is_recorded_and_no_child_left(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--preset", "tiny", "--repeat", "100000", "--timeout", "4")
    assert proc.returncode == 1, proc.stderr
    rows = cli(tmp_path, "sessions", "list").stdout.splitlines()
    assert "timeout" in rows[1]
    leftovers = subprocess.run(["pgrep", "-f", f"workloads.run --spec {tmp_path}"],
                               capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def test_analyze_fixture_totals(h100_fixtures: Path, tmp_path: Path) -> None:
    src = h100_fixtures / "torch_trace.json"
    raw = json.loads(src.read_text())
    raw_ns = sum(e["dur"] for e in raw["traceEvents"] if e.get("cat") == "kernel") * 1000
    gz = tmp_path / "t.json.gz"
    with open(src, "rb") as fi, gzip.open(gz, "wb") as fo:
        shutil.copyfileobj(fi, fo)
    for path in (src, gz):
        out = tmp_path / "a.json"
        proc = cli(tmp_path, "analyze", str(path), "--json", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "GPU time by category" in proc.stdout
        data = json.loads(out.read_text())
        total = sum(c["total_ns"] for c in data["categories"] if c["category"] != "memset")
        kernel_only = sum(c["total_ns"] for c in data["categories"]
                          if c["category"] not in ("memset", "memcpy"))
        assert abs(kernel_only - raw_ns) / raw_ns < 1e-3, (kernel_only, raw_ns, total)


def test_analyze_save_keeps_per_rank_traces(tmp_path: Path, h100_fixtures: Path) -> None:
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    for rank in (0, 1):
        shutil.copy(h100_fixtures / "torch_trace.json", ranks / f"rank{rank}.json")
    home = tmp_path / "home"
    saved = cli(home, "analyze", str(ranks), "--save", "--json", str(tmp_path / "a.json"))
    assert saved.returncode == 0, saved.stderr
    once = json.loads((tmp_path / "a.json").read_text())["kernel_total_ns"]
    run_id = cli(home, "sessions", "list").stdout.splitlines()[1].split()[0]
    shutil.rmtree(ranks)  # the session must not need the originals
    report = cli(home, "report", run_id, "--json", str(tmp_path / "b.json"))
    assert report.returncode == 0, report.stderr
    stored = json.loads((tmp_path / "b.json").read_text())["analysis"]["kernel_total_ns"]
    assert stored == once > 0
