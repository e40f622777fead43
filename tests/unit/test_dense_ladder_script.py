"""benchmarks/dense_ladder.py without a GPU: its rows come from sessions, here stand-ins with
the fields a stored run record has, so the naming, the shares and the targets are checked on
known numbers (the real rows are measured on the GPU by benchmarks/device/session16.sh)."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from benchmarks import dense_ladder
from benchmarks.dense_ladder_report import device_name, targets_table

GiB = 2 ** 30


def fake_record(spec, *, tok_s=100.0, gb_s=3000.0, tflops=None, peak=10 * GiB, ok=True,
                device="NVIDIA H200"):
    tokens = spec.params.get("batch", 1)
    return SimpleNamespace(
        id=f"run-{len(spec.layers)}-{spec.params.get('prompt_len', 0)}", status="ok",
        error=None, env={"device_name": device, "driver": "580", "torch": "2.11"},
        spec={"layers": spec.layers},
        metrics={"tokens_per_s": tok_s, "tokens_per_step": tokens, "achieved_gb_s": gb_s,
                 "bytes_per_step": gb_s * 1e9 * tokens / tok_s, "achieved_tflops": tflops,
                 "peak_mem_bytes": peak, "latency_ms": {"median": 1e3 * tokens / tok_s,
                                                        "samples": [1e3 * tokens / tok_s] * 3}},
        parity={"ok": ok, "max_rel_err": 0.01, "top1_agreement": 1.0},
        layers_applied=[], details={"runtime": {}, "peak_mem_before_prepare_bytes": peak})


def run_main(monkeypatch, tmp_path, argv, make):
    monkeypatch.setattr(dense_ladder, "run", lambda spec, store: make(spec))
    monkeypatch.setattr(sys, "argv", ["dense_ladder.py", "--device", "cpu",
                                      "--out-dir", str(tmp_path), *argv])
    monkeypatch.setenv("AIPERF_HOME", str(tmp_path / "home"))
    return dense_ladder.main()


def test_results_are_named_after_the_gpu_when_the_decode_rows_are_skipped(monkeypatch,
                                                                          tmp_path):
    """--skip decode-low,decode named the file dense_ladder-unknown: the device came from the
    decode sessions only."""
    run_main(monkeypatch, tmp_path, ["--skip", "decode-low,decode,grid"],
             lambda spec: fake_record(spec, tflops=600.0))
    assert sorted(p.name for p in tmp_path.glob("dense_ladder-*")) == [
        "dense_ladder-nvidia-h200.json", "dense_ladder-nvidia-h200.md"]
    payload = json.loads((tmp_path / "dense_ladder-nvidia-h200.json").read_text())
    assert [row["layers"][-1] for row in payload["prefill"]] == ["L3", "L5", "L5-fp8"]
    assert payload["partial"] is False


def test_grid_rows_cover_every_context_and_batch_with_their_share(monkeypatch, tmp_path):
    seen = []

    def make(spec):
        seen.append((tuple(spec.layers), spec.params.get("prompt_len"), spec.params["batch"],
                     spec.params.get("max_seq"), spec.params.get("decode_kernel")))
        return fake_record(spec)

    run_main(monkeypatch, tmp_path, ["--skip", "decode,prefill", "--contexts", "128,8192",
                                     "--batches", "1,8", "--grid-stacks",
                                     "L0-L4,L5-gemv;L0-L4,L5-gemv@decode_kernel=sdpa"], make)
    grid = [s for s in seen if s[1] is not None]
    assert len(grid) == 2 * 2 * 2
    assert {(s[1], s[2], s[3]) for s in grid} == {(128, 1, 176), (128, 8, 176), (8192, 1, 8240),
                                                 (8192, 8, 8240)}
    assert grid[0][0] == ("L0", "L1", "L2", "L3", "L4", "L5-gemv")
    assert {s[4] for s in grid} == {None, "sdpa"}
    payload = json.loads(next(tmp_path.glob("dense_ladder-*.json")).read_text())
    row = payload["grid"][0]
    assert row["share_of_copy_bw"] is None  # no copy bandwidth on the CPU: n/a, not 0
    assert row["effective_tb_s"] == pytest.approx(3.0)


def decode_row(layers, context, share, peak, tok_s=200.0, ok=True):
    return {"layers": layers, "context": context, "batch": 1, "share_of_copy_bw": share,
            "peak_mem_bytes": peak, "tokens_per_s": tok_s, "parity_ok": ok,
            "session": f"{layers[-1]}-{context}"}


def test_targets_read_the_best_row_per_figure():
    best = ["L0", "L4", "L5-gemv"]
    fp8 = ["L0", "L4", "L5-fp8"]
    results = {"ladder": [], "prefill": [
        {"layers": ["L0", "L5"], "share_of_gemm_peak": 0.84, "parity_ok": True,
         "session": "p"}],
        "grid": [decode_row(best, 128, 0.86, 15 * GiB, 240.0), decode_row(best, 128, 0.9,
                                                                           15 * GiB, ok=False),
                 decode_row(best, 8192, 0.80, 16 * GiB), decode_row(fp8, 128, 0.76, 8 * GiB),
                 decode_row(best + ["L6-fp8kv"], 8192, 0.95, 16 * GiB)]}
    rows = {r["figure"]: r for r in targets_table(results)["rows"]}
    ctx128 = rows["bf16 decode b1, context 128: share of the copy-bandwidth limit"]
    assert ctx128["measured"] == 0.86 and ctx128["met"]  # the parity failure is not the best
    ctx8192 = rows["bf16 decode b1, context 8192: share of the copy-bandwidth limit"]
    assert ctx8192["measured"] == 0.80 and not ctx8192["met"]  # an FP8-KV row is not bf16
    assert rows["FP8 decode b1, context 128: share of the copy-bandwidth limit"]["met"]
    peak = rows["FP8 serving peak / bf16 serving peak"]
    assert peak["measured"] == pytest.approx(8 / 15) and peak["met"]
    assert rows["8192-token prefill: share of the GEMM peak"]["met"]
    assert rows["rows without parity ok"]["measured"] == 1.0
    assert rows["bf16 decode b1, context 128: tok/s (H200 target)"]["measured"] == 240.0


def test_device_name_falls_back_to_the_device():
    assert device_name([SimpleNamespace(env={}), SimpleNamespace(env={"device_name": "X"})],
                       cuda=True) == "X"
    assert device_name([], cuda=False) == "cpu"
