"""Real subprocess runs of ``python -m workloads.run`` on the tiny preset (CPU)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workloads.inventory_format import decode
from workloads.protocol import parse_event

REPO = Path(__file__).resolve().parents[2]


def run_child(tmp_path: Path, **spec_fields):
    spec = {"preset": "tiny", "layers": ["L0", "L1"], "repeat": 3, "warmup": 1,
            "device": "cpu", **spec_fields}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "workloads.run", "--spec", str(spec_path), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    events = [e for e in map(parse_event, done.stdout.splitlines()) if e]
    result = json.loads((out / "result.json").read_text())
    return done, events, result, out


def check_ok_result(done, events, result):
    assert done.returncode == 0, done.stderr
    assert result["status"] == "ok" and result["error"] is None
    assert events[-1] == {"event": "done", "status": "ok", "error": None}
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases[:3] == ["build", "reference", "parity"] and phases[-1] == "write"
    assert [e["i"] for e in events if e.get("phase") == "measure" and e["event"] == "step"] \
        == [1, 2, 3]
    metrics = result["metrics"]
    latency = metrics["latency_ms"]
    assert latency["n"] == 3 and len(latency["samples"]) == 3
    assert latency["min"] <= latency["median"] <= latency["max"]
    assert metrics["step"] == "decode" and metrics["tokens_per_step"] == 2
    assert metrics["tokens_per_s"] == pytest.approx(2 / (latency["median"] / 1e3))
    for key in ("ttft_ms", "tpot_ms", "prefill_ms", "prefill_tokens_per_s", "peak_mem_bytes",
                "flops_per_step", "bytes_per_step", "achieved_tflops", "achieved_gb_s"):
        assert metrics[key] is not None and metrics[key] > 0, key
    parity = result["parity"]
    assert parity["ok"] and parity["reference"] == "L0" and parity["max_rel_err"] == 0.0
    assert parity["top1_agreement"] == 1.0 and parity["tokens_compared"] == 16
    assert result["layers_applied"] == [{"name": "L0", "applied": True, "reason": None},
                                {"name": "L1", "applied": True, "reason": "no effect on CPU"}]
    env = result["env"]
    assert env["device_kind"] == "cpu" and env["torch"] and env["cc"] is None
    assert result["spec"]["preset"] == "tiny"
    assert result["details"]["peak_mem_source"] == "process peak RSS"


def test_timer_run_writes_a_complete_result(tmp_path):
    done, events, result, out = run_child(tmp_path, profiler="timer")
    check_ok_result(done, events, result)
    assert result["artifacts"] == {}
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]  # no temp files left


def test_torch_profiler_run_writes_a_chrome_trace(tmp_path):
    done, events, result, out = run_child(tmp_path, profiler="torch",
                                          profiler_options={"steps": 2})
    check_ok_result(done, events, result)
    assert result["artifacts"] == {"trace": "trace.json.gz"}
    assert [e["i"] for e in events if e.get("phase") == "profile" and e["event"] == "step"] \
        == [1, 2]
    trace = json.loads(gzip.decompress((out / "trace.json.gz").read_bytes()))
    trace_events = trace["traceEvents"]
    cpu_ops = [e for e in trace_events if e.get("cat") == "cpu_op"]
    assert any(e["name"] == "aten::mm" for e in cpu_ops)
    assert sum(e["name"] == "aiperf:step" for e in trace_events) == 2
    assert not (out / "trace.json").exists()
    # and the operation inventory of one step, compact, for the kernels' FLOPs and bytes
    inventory, why = decode(result["details"]["inventory"])
    assert why is None and not inventory.truncated
    ops = [inventory.op(i)["op"] for i in range(len(inventory))]
    assert ops.count("aten::linear") == 7 * 2 + 1 and ops.count("aten::matmul") == 2 * 2
    assert len(json.dumps(result["details"]["inventory"])) < 8000


def test_prefill_mode_reports_prompt_tokens(tmp_path):
    done, _, result, _ = run_child(tmp_path, params={"mode": "prefill"}, repeat=2)
    assert done.returncode == 0, done.stderr
    assert result["metrics"]["step"] == "prefill"
    assert result["metrics"]["tokens_per_step"] == 64


def test_bad_params_fail_with_one_line_and_exit_1(tmp_path):
    done, events, result, _ = run_child(tmp_path, params={"kv_heads": 3})
    assert done.returncode == 1
    assert result["status"] == "failed" and result["error_type"] == "WorkbenchError"
    assert result["error"] == ("WorkbenchError: heads (4) must be a multiple of kv_heads (3) "
                               "for grouped-query attention")
    assert "Traceback" in done.stderr
    assert events[-1]["event"] == "done" and events[-1]["status"] == "failed"
    assert result["metrics"]["latency_ms"] is None and result["parity"] is None


def test_allocation_failure_in_the_model_fails_the_run(tmp_path):
    # Valid params, but a 2^40-row embedding cannot be allocated: a real torch error.
    done, _, result, _ = run_child(tmp_path, params={"vocab": 2**40})
    assert done.returncode == 1
    assert result["status"] == "failed" and result["error_type"] in ("RuntimeError",
                                                                     "OutOfMemoryError")
    assert "\n" not in result["error"] and len(result["error"]) <= 400
    assert result["env"]["device_kind"] == "cpu"


def test_unreadable_spec_still_writes_a_failed_result(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "workloads.run", "--spec", str(tmp_path / "missing.json"),
         "--out", str(out)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and result["spec"] is None
    assert result["error"].startswith("WorkbenchError: cannot read spec")
