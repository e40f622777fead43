"""`eval --perplexity`: token formats, the sliding-window method, L0 vs L1 agreement on a
tiny checkpoint and an injected precision bug caught by the threshold (exit 1)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workloads import checkpoint, perplexity
from workloads.catalog import get_preset
from workloads.dense import DenseDecoder, resolve_shape
from workloads.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))


class _Wrapped:
    def __init__(self, model: DenseDecoder) -> None:
        self.model, self.name = model, "dense"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path, DenseDecoder]:
    """A tiny checkpoint with sharpened logits (so precision matters) and 1,536 tokens
    sampled from it in three 512-token chunks."""
    folder = tmp_path_factory.mktemp("eval")
    shape = resolve_shape({**get_preset("dense", "tiny"), "max_seq": 1024, "batch": 1})
    model = DenseDecoder(shape, CPU, torch.float32, seed=1).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)
    checkpoint.write_checkpoint(model, shape, folder / "ckpt")
    generator, tokens = torch.Generator().manual_seed(0), []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 1,536 tiny decode steps: thread hand-offs would dominate
    with torch.inference_mode():
        for _ in range(3):
            token = torch.randint(0, shape["vocab"], (1, 1), generator=generator)
            tokens.append(token.item())
            for position in range(511):
                probs = model(token, position).softmax(-1)
                token = torch.multinomial(probs, 1, generator=generator)
                tokens.append(token.item())
    torch.set_num_threads(threads)
    np.save(folder / "tokens.npy", np.array(tokens, dtype=np.int32))
    return folder / "ckpt", folder / "tokens.npy", model


def test_token_formats_read_the_same_ids(tmp_path: Path) -> None:
    ids = np.array([5, 0, 511, 7, 7, 300], dtype=np.int64)
    np.save(tmp_path / "t.npy", ids.astype(np.int32))
    ids.astype(np.uint16).tofile(tmp_path / "t.bin")
    (tmp_path / "t.txt").write_text("5 0\n511, 7\n7 300\n")
    for name in ("t.npy", "t.bin", "t.txt"):
        assert perplexity.read_tokens(tmp_path / name).tolist() == ids.tolist()
    ids.astype(np.int32).tofile(tmp_path / "t32.bin")
    assert perplexity.read_tokens(tmp_path / "t32.bin", "int32").tolist() == ids.tolist()
    (tmp_path / "bad.txt").write_text("hello world")
    with pytest.raises(WorkbenchError, match="not a list of token ids"):
        perplexity.read_tokens(tmp_path / "bad.txt")
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    with pytest.raises(WorkbenchError, match="whole number"):
        perplexity.read_tokens(tmp_path / "odd.bin")


@pytest.mark.parametrize("total,seq_len,stride", [(3000, 1024, 256), (1536, 1024, 256),
                                                  (10, 4, 3), (7, 5, 1), (100, 1024, 256)])
def test_windows_score_every_token_after_the_first_once(total, seq_len, stride) -> None:
    scored: list[int] = []
    for begin, end, first in perplexity.windows(total, seq_len, stride):
        assert end - begin <= seq_len and begin < first <= end
        scored += range(first, end)
    assert scored == list(range(1, total))


def test_one_window_equals_the_full_sequence_cross_entropy(tiny) -> None:
    _, tokens_path, model = tiny
    tokens = np.load(tokens_path)[:300].astype(np.int64)
    with torch.inference_mode():
        nll, count = perplexity.score(_Wrapped(model), tokens, 1024, 256, CPU)
        ids = torch.from_numpy(tokens)
        logits = model(ids[None], 0, all_logits=True)[0]
        direct = torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="sum")
    assert count == 299
    assert nll == pytest.approx(float(direct), rel=1e-6)


def test_l0_and_l1_agree_and_a_precision_bug_is_caught(tiny, tmp_path: Path) -> None:
    ckpt, tokens, _ = tiny
    args = ["eval", "--perplexity", str(tokens), "--seq-len", "1024", "--stride", "256",
            "--layers-sets", "L0;L0,L1", "--checkpoint", str(ckpt), "--device", "cpu",
            "--quiet"]
    good = cli(tmp_path, *args, "--json", str(tmp_path / "good.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    record = json.loads((tmp_path / "good.json").read_text())
    assert record["kind"] == "eval" and record["status"] == "ok"
    result = record["eval"]
    assert result["windows"] == 3 and result["tokens"] == 1536
    l0, l1 = (entry["ppl"] for entry in result["sets"])
    assert 1 < l0 < 512  # the model predicts its own samples far better than chance
    assert abs(l1 / l0 - 1) <= 0.01 and all(entry["ok"] for entry in result["sets"])
    assert [entry["layers"] for entry in result["sets"]] == [["L0"], ["L0", "L1"]]
    assert record["spec"]["checkpoint"] and result["layer_sets"] == [["L0"], ["L0", "L1"]]

    bad = cli(tmp_path, *args, "--simulate-bug", "fp8")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "accuracy regression" in bad.stdout and "FAIL" in bad.stdout
    row = next(line for line in bad.stdout.splitlines() if line.strip().startswith("L0,L1"))
    change = float(row.split()[3].rstrip("%"))
    assert abs(change) > 1.0 and math.isfinite(change)


def test_bad_eval_input_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("1 2 x")
    proc = cli(tmp_path, "eval", "--perplexity", str(tmp_path / "t.txt"))
    assert proc.returncode == 2 and "not a list of token ids" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = cli(tmp_path, "eval", "--perplexity", str(tmp_path / "t.txt"), "--stride", "2000")
    assert proc.returncode == 2 and "--stride" in proc.stderr
