"""`sweep` and `suite` for real on the CPU (dense/tiny): the sweep table and text plot in the
Markdown export; a suite whose entry was made slower after the baseline exits 1 naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIPERF_HOME": str(home),
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_batch_sweep_table_and_plot_in_markdown(tmp_path):
    export = tmp_path / "sweep.md"
    done = run_cli(tmp_path / "home", "sweep", "--workload", "dense", "--preset", "tiny",
                   "--device", "cpu", "--param", "batch=1,4,16", "--repeat", "3", "--warmup",
                   "1", "--quiet", "--export", str(export))
    assert done.returncode == 0, done.stderr
    text = export.read_text()
    assert text == done.stdout
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| batch | status | latency median | tokens/s | speedup | knee")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| 1", "| 4", "| 16"]
    assert all(" | ok | " in row for row in table[2:])
    # Batch 16 decodes 16x the tokens of batch 1 per step in far less than 16x the time.
    speedups = [float(row.split(" | ")[4].split()[0]) for row in table[2:]]
    assert speedups[0] == 1.0 and speedups[2] > 2.0
    plot = text.split("```")[1]
    assert "throughput (tokens/s)" in plot and "latency median (ms)" in plot
    # 3 points in each of the two plots ("K" marks the knee's point when there is one; the
    # legend line under a plot that has a knee names it too, so count only the plot rows)
    rows = "\n".join(line for line in plot.splitlines() if " |" in line)
    assert rows.count("*") + rows.count("K") == 6
    assert "Knee:" in text
    sessions = run_cli(tmp_path / "home", "sessions", "list")
    assert sessions.stdout.count(" ok ") == 3


def _suite(path: Path, slow_layers: int) -> Path:
    path.write_text(f"""
name = "ci"
threshold_pct = 150
[defaults]
workload = "dense"
preset = "tiny"
device = "cpu"
repeat = 9
warmup = 3
[[runs]]
name = "steady"
params = {{ batch = 2 }}
[[runs]]
name = "made-slower"
params = {{ batch = 2, layers = {slow_layers}, hidden = {128 * slow_layers}, mlp = {384 * slow_layers} }}
""")
    return path


def test_suite_gates_on_a_slowed_entry(tmp_path):
    home = tmp_path / "home"
    first = run_cli(home, "suite", str(_suite(tmp_path / "suite.toml", 2)), "--update-baseline",
                    "--quiet")
    assert first.returncode == 0, first.stderr
    baseline = json.loads((home / "suites" / "ci" / "baseline.json").read_text())
    assert sorted(baseline["entries"]) == ["made-slower", "steady"]
    # The same entry name now runs a 4x deeper, 4x wider model (~60x the work). That is another
    # model, not a slower run of this one: the diff refuses it ("not comparable") and the
    # gate, failing closed, does not pass it. (The regression path of the gate on real runs:
    # tests/unit/test_diff_comparability.py::test_suite_entry_regresses_and_fails_closed.)
    second = run_cli(home, "suite", str(_suite(tmp_path / "suite.toml", 8)), "--quiet")
    assert second.returncode == 1, second.stdout + second.stderr
    assert ("NOT JUDGED (gate fails closed): made-slower: not comparable: hidden 256 vs 1024; "
            "layers 2 vs 8; mlp 768 vs 3072") in second.stderr
    rows = {line.split(" | ")[0][2:]: line for line in second.stdout.splitlines()
            if line.startswith("| ") and " | " in line}
    assert "**NOT JUDGED**" in rows["made-slower"] and "not comparable" in rows["made-slower"]
    # the steady entry never regresses; on a heavily loaded box its noise may be wider than
    # the gate, and then it is "not judged" too (the gate fails closed), never passed blindly
    assert "**REGRESSION**" not in rows["steady"]
    summaries = sorted((home / "suites" / "ci").glob("*.json"))
    latest = json.loads([p for p in summaries if p.name != "baseline.json"][-1].read_text())
    assert latest["regressions"] == [] and "made-slower" in latest["undecided"]
    assert (home / "suites" / "ci" / f"{latest['when']}.md").is_file()
