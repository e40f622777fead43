"""`diff` and `calibrate` end to end on CPU: real tiny runs in real child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _run(home: Path, *extra: str, workload: str = "dense") -> str:
    proc = cli(home, "run", "--workload", workload, "--preset", "tiny", "--profiler", "timer",
               "--repeat", "8", "--quiet", "--no-telemetry", *extra)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout.split()[1].rstrip(":")  # "session <id>: ok"


SLEEP_MS = 40  # per measured step: the tiny step takes ~1 ms, 40x that even under load


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A tiny run, and the same shape slowed by a fixed sleep in every measured step: slower
    by construction, so a busy machine (whose CVs reach 50-70%) cannot flip the verdict."""
    home = tmp_path_factory.mktemp("home")
    fast = _run(home)
    slow = _run(home, "--param", f"step_sleep_ms={SLEEP_MS}")
    return home, fast, slow


def _bigger(home: Path) -> str:
    return _run(home, "--param", "hidden=768", "--param", "mlp=3072", "--param", "layers=6",
                "--param", "heads=8", "--param", "kv_heads=4")


def test_run_against_itself_is_within_noise(two_runs: tuple[Path, str, str]) -> None:
    home, fast, _ = two_runs
    proc = cli(home, "diff", fast, fast, "--fail-on-regression", "0")
    assert proc.returncode == 0, proc.stderr
    assert "verdict: within noise — speedup 1.000x" in proc.stdout


def test_other_shape_is_not_comparable_unless_forced(two_runs: tuple[Path, str, str]) -> None:
    home, fast, _ = two_runs
    bigger = _bigger(home)
    proc = cli(home, "diff", fast, bigger, "--fail-on-regression", "10")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("verdict: not comparable: heads 4 vs 8; hidden 128 vs 768; kv_heads 2 vs 4; "
            "layers 2 vs 6; mlp 384 vs 3072 (--force compares anyway)") in proc.stdout
    assert "gate: not comparable" in proc.stderr
    forced = cli(home, "diff", fast, bigger, "--force")
    assert forced.returncode == 0 and "compared anyway (--force)" in forced.stdout


def test_moe_against_dense_is_not_comparable(two_runs: tuple[Path, str, str]) -> None:
    home, fast, _ = two_runs
    moe = _run(home, workload="moe")
    proc = cli(home, "diff", moe, fast, "--fail-on-regression", "5")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not comparable: workload moe vs dense" in proc.stdout
    assert "speedup" not in proc.stdout.splitlines()[2]  # no ratio of apples to oranges
    plain = cli(home, "diff", moe, fast)  # without a gate: printed, exit 0
    assert plain.returncode == 0 and "not comparable: workload moe vs dense" in plain.stdout


def test_slower_run_regresses_and_fails_the_gate(two_runs: tuple[Path, str, str],
                                                 tmp_path: Path) -> None:
    """The sleep is a run option, not a shape: the two runs are comparable, and the slowed one
    regressed by far more than any noise."""
    home, fast, slow = two_runs
    out = tmp_path / "d.json"
    proc = cli(home, "diff", fast, slow, "--fail-on-regression", "10", "--json",
               str(out), "--export", str(tmp_path / "d.md"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "comparable (workload, preset, shape, dtype, step, device equal)" in proc.stdout
    assert "verdict: regressed" in proc.stdout and "regression beyond 10%" in proc.stderr
    data = json.loads(out.read_text())["diff"]
    assert data["verdict"] == "regressed"
    assert data["speedup"] < 1.0 and data["ci_high"] < 1.0
    ratio = data["baseline"]["latency_median_ms"] / data["candidate"]["latency_median_ms"]
    assert data["speedup"] == pytest.approx(ratio)
    assert "verdict: regressed" in (tmp_path / "d.md").read_text()
    # The same slowdown under a looser gate passes.
    loose = cli(home, "diff", fast, slow, "--fail-on-regression", "1000000")
    assert loose.returncode == 0, loose.stderr
    # And the other way round it is an improvement, with the inverse ratio.
    back = cli(home, "diff", slow, fast, "--fail-on-regression", "10")
    assert back.returncode == 0, back.stderr
    assert "verdict: improved" in back.stdout
    assert f"speedup {1.0 / data['speedup']:.3f}x" in back.stdout


def test_calibrate_on_cpu_caches_measured_ceilings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "cal.json"
    proc = cli(home, "calibrate", "--device", "cpu", "--gemm-n", "256", "--copy-mib", "16",
               "--repeats", "3", "--json", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "fp32 GEMM" in proc.stdout and "copy bandwidth" in proc.stdout
    measured = json.loads(out.read_text())["measurement"]
    fp32 = measured["gemm_flops"]["fp32"]
    assert fp32 and 1e8 < fp32 < 1e13  # a CPU core does GFLOP/s, not TFLOP/s
    assert measured["gemm_flops"]["bf16"] is None  # not measured on CPU: null, never 0
    cache = json.loads((home / "ceilings.json").read_text())
    key = f"{measured['device_name']}|{measured['driver'] or 'unknown'}"
    assert cache[key]["source"] == "measured"
    assert cache[key]["peak_flops"]["fp32"] == pytest.approx(fp32)
    # Later analyses resolve these measured ceilings for this device + driver.
    from analyzers.ceilings import resolve_ceilings
    from workbench.api.pipeline.analysis import load_ceilings_cache

    found = resolve_ceilings(measured["device_name"], measured["driver"], load_ceilings_cache(home))
    assert found is not None and found.source == "measured"
    assert found.dram_bw == pytest.approx(measured["copy_bytes_per_s"])


@pytest.mark.gpu
def test_calibrate_on_gpu_measures_tensor_roofs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "cal.json"
    proc = cli(home, "calibrate", "--device", "cuda", "--gemm-n", "4096", "--copy-mib", "512",
               "--repeats", "10", "--json", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = json.loads(out.read_text())
    gemm = data["measurement"]["gemm_flops"]
    assert gemm["bf16"] > 2 * gemm["fp32"]  # tensor cores vs the FP32 pipes
    assert data["measurement"]["driver"]  # keyed by a real driver version
    if data["spec"]:  # a device in the spec table: measured within reach of the data sheet
        assert 0.3 < gemm["bf16"] / data["spec"]["peak_flops"]["bf16"] < 1.1
        assert 0.3 < data["ceilings"]["dram_bw"] / data["spec"]["dram_bw"] < 1.1
    cache = json.loads((home / "ceilings.json").read_text())
    assert any(v["source"] == "measured" and v["driver"] == data["measurement"]["driver"]
               for v in cache.values())
