"""Accuracy check: sliding-window perplexity on a pre-tokenized file, per layer set.

Child entry point of ``aiperf-workbench eval``: ``python -m workloads.perplexity --spec
eval_spec.json --out DIR`` writes DIR/eval.json (atomically) and progress events on stdout.

Method (the seed-001 recipe, ``--seq-len 1024 --stride 256``; the sliding window of HF's
"perplexity of fixed-length models"): windows start at 0, stride, 2*stride, ...; each is at
most seq_len tokens long and scores only the tokens the previous window did not, so every
token after the first is scored exactly once, with up to seq_len - stride tokens of context.
Perplexity = exp(total NLL / scored tokens) — weighted per token (HF averages per-window means,
which over-weights a short last window).

Threshold: every layer set is compared with the first (the baseline, normally L0):
|ppl / ppl_baseline - 1| <= tolerance (default 0.01 = 1%). The same weights under exact or
near-exact math (L0 vs TF32) agree to ~1e-4; a precision bug (``simulate_bug`` rounds the
logits of every set after the first to bf16 / fp8, for checking the check) lands far outside.

Token files: .npy (integer array, flattened), .bin (raw ids, dtype ``token_dtype``, default
uint16 as nanoGPT writes them), anything else: text of integer ids separated by whitespace
or commas.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from workloads.errors import WorkbenchError

EVAL_FILE = "eval.json"
DEFAULT_TOLERANCE = 0.01
BIN_DTYPES = ("uint16", "uint32", "int32", "int64")
SIMULATED_BUGS = ("bf16", "fp8")


def read_tokens(path: str | Path, token_dtype: str = "uint16") -> np.ndarray:
    """Token ids as int64 [N]. WorkbenchError (one line) for unreadable or non-integer data."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WorkbenchError(f"token file {path} does not exist")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if not np.issubdtype(array.dtype, np.integer):
                raise WorkbenchError(f"{path.name} holds {array.dtype}, not integer token ids")
            tokens = array.reshape(-1).astype(np.int64)
        elif path.suffix == ".bin":
            if token_dtype not in BIN_DTYPES:
                raise WorkbenchError(f"unknown token dtype {token_dtype!r}",
                                     f"choose one of: {', '.join(BIN_DTYPES)}")
            size = np.dtype(token_dtype).itemsize
            if path.stat().st_size % size:
                raise WorkbenchError(f"{path.name} is {path.stat().st_size} bytes, not a "
                                     f"whole number of {token_dtype} ids",
                                     "pass the dtype it was written with (--token-dtype)")
            tokens = np.fromfile(path, dtype=token_dtype).astype(np.int64)
        else:
            text = path.read_text(encoding="utf-8", errors="strict")
            items = [t for t in re.split(r"[\s,]+", text) if t]
            bad = next((t for t in items if not re.fullmatch(r"\d+", t)), None)
            if bad is not None:
                raise WorkbenchError(f"{path.name} is not a list of token ids: found {bad[:20]!r}",
                                     "give ids as integers separated by spaces, commas or lines")
            tokens = np.array([int(t) for t in items], dtype=np.int64)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read token file {path.name}: {exc}") from None
    if tokens.size < 2:
        raise WorkbenchError(f"{path.name} has {tokens.size} tokens; perplexity needs at least 2")
    if tokens.min() < 0:
        raise WorkbenchError(f"{path.name} has negative token ids")
    return tokens


def windows(total: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_scored): tokens [first_scored, end) are scored by window
    [begin, end), each predicted from the ones before it inside the window."""
    if seq_len < 2 or stride < 1 or stride >= seq_len:
        raise WorkbenchError(f"need seq_len >= 2 and 1 <= stride < seq_len, got seq_len "
                             f"{seq_len}, stride {stride}")
    plan, previous_end = [], 0
    for begin in range(0, total, stride):
        end = min(begin + seq_len, total)
        plan.append((begin, end, max(previous_end, begin + 1)))
        previous_end = end
        if end == total:
            break
    return plan


def compare_sets(sets: list[dict[str, Any]], tolerance: float) -> bool:
    """Mark each set's change against the first; True when all are within tolerance."""
    base = sets[0]["ppl"]
    ok = True
    for entry in sets:
        change = entry["ppl"] / base - 1.0 if base and math.isfinite(entry["ppl"]) else math.inf
        entry["rel_change"] = change
        entry["ok"] = abs(change) <= tolerance
        ok = ok and entry["ok"]
    return ok


def sequence_logits(workload: Any, tokens: Any) -> Any:
    """Logits [T, vocab] for every position of tokens [1, T]. A workload may define
    ``sequence_logits(tokens)``; the built-in dense model answers model(tokens, 0, True)."""
    custom = getattr(workload, "sequence_logits", None)
    if callable(custom):
        return custom(tokens).reshape(tokens.shape[1], -1)
    model = getattr(workload, "model", None)
    if model is None:
        raise WorkbenchError(f"workload {workload.name!r} cannot score sequences",
                             "give it a sequence_logits(tokens [1, T]) -> [T, vocab] method")
    return model(tokens, 0, all_logits=True)[0]


def score(workload: Any, tokens: np.ndarray, seq_len: int, stride: int, device: Any,
          simulate_bug: str = "") -> tuple[float, int]:
    """(total NLL in nats, scored tokens) over the sliding windows."""
    import torch

    ids = torch.from_numpy(tokens).to(device)
    total_nll, scored = 0.0, 0
    plan = windows(len(tokens), seq_len, stride)
    for index, (begin, end, first) in enumerate(plan):
        logits = sequence_logits(workload, ids[None, begin:end])
        if index == 0 and int(tokens.max()) >= logits.shape[-1]:
            raise WorkbenchError(f"token id {int(tokens.max())} is outside the model's vocab "
                                 f"({logits.shape[-1]})", "was the file tokenized for it?")
        # Position p predicts token p + 1: the scored targets [first, end) use rows first-1...
        rows = logits[first - 1 - begin:end - 1 - begin].float()
        if simulate_bug == "bf16":
            rows = rows.to(torch.bfloat16).float()
        elif simulate_bug == "fp8":
            rows = rows.to(torch.float8_e4m3fn).float()
        nll = torch.nn.functional.cross_entropy(rows, ids[first:end], reduction="sum")
        total_nll += float(nll.double())
        scored += end - first
        emit_step(index + 1, len(plan))
    return total_nll, scored


def emit_step(index: int, total: int) -> None:
    from workloads.protocol import emit

    emit("step", phase="measure", i=index, n=total)


def eval_params(run_params: dict[str, Any], seq_len: int) -> dict[str, Any]:
    """One sequence at a time, with a context (RoPE table, KV cache) long enough."""
    params = dict(run_params)
    params["batch"] = 1
    params["max_seq"] = max(int(params.get("max_seq") or 0), seq_len)
    return params


def build_workload(spec: Any, device: Any, seq_len: int) -> tuple[Any, dict[str, Any]]:
    """Build as ``workloads.run`` does (catalog or target, checkpoint loaded), for eval."""
    from workloads import catalog
    from workloads.run import load_workload, torch_dtype

    workload, params = load_workload(spec)
    if spec.checkpoint:
        from workloads import checkpoint

        params = eval_params(params, seq_len)
        params, config = checkpoint.prepare_params(spec.checkpoint, params,
                                                   eval_params(spec.params, seq_len))
    elif not spec.target:
        params = eval_params({**catalog.get_preset(spec.workload, spec.preset), **spec.params},
                             seq_len)
    workload.build(device, torch_dtype(params.get("dtype", "float32")), params, seed=spec.seed)
    facts: dict[str, Any] = {}
    if spec.checkpoint:
        facts = checkpoint.load_checkpoint(workload, spec.checkpoint, config)
    return workload, facts


def evaluate(data: dict[str, Any], record: dict[str, Any]) -> None:
    import torch

    from workloads.environment import collect_env, resolve_device
    from workloads.layers import LayerOutcome, apply_layers
    from workloads.protocol import emit
    from workloads.spec import RunSpec

    spec = RunSpec.from_dict(data["run"]).validate()
    seq_len, stride = int(data["seq_len"]), int(data["stride"])
    tolerance = float(data.get("tolerance", DEFAULT_TOLERANCE))
    simulate_bug = data.get("simulate_bug") or ""
    if simulate_bug and simulate_bug not in SIMULATED_BUGS:
        raise WorkbenchError(f"unknown simulated bug {simulate_bug!r}",
                             f"choose one of: {', '.join(SIMULATED_BUGS)}")
    tokens = read_tokens(data["tokens_file"], data.get("token_dtype", "uint16"))
    if data.get("max_tokens"):
        tokens = tokens[: int(data["max_tokens"])]
    device = resolve_device(spec.device)
    record["env"] = collect_env(device)
    record.update(tokens=int(tokens.size), seq_len=seq_len, stride=stride, tolerance=tolerance,
                  windows=len(windows(len(tokens), seq_len, stride)), simulate_bug=simulate_bug)
    sets: list[dict[str, Any]] = []
    record["sets"] = sets
    for index, layer_set in enumerate(data["layer_sets"]):
        label = ",".join(layer_set)
        emit("phase", phase="build", message=f"layer set {label}: building the model")
        torch.manual_seed(spec.seed)
        workload, facts = build_workload(spec, device, seq_len)
        record.setdefault("checkpoint", facts or None)
        outcomes: list[LayerOutcome] = []
        apply_layers(layer_set, workload, device, outcomes)
        emit("phase", phase="measure", message=f"layer set {label}: perplexity over "
             f"{record['windows']} windows")
        started = time.perf_counter()
        nll, scored = score(workload, tokens, seq_len, stride, device,
                            simulate_bug if index > 0 else "")
        ppl = math.exp(nll / scored)
        sets.append({"layers": layer_set, "ppl": ppl, "nll_per_token": nll / scored,
                     "scored_tokens": scored, "seconds": time.perf_counter() - started,
                     "compute_precision": workload.compute_precision,
                     "layer_outcomes": [o.to_dict() for o in outcomes]})
        emit("metric", name=f"ppl[{label}]", value=ppl, unit="")
        del workload
        if device.type == "cuda":
            torch.cuda.empty_cache()
    record["ok"] = compare_sets(sets, tolerance)
    record["status"] = "ok"


def main(argv: list[str] | None = None) -> int:
    import json

    import torch

    from workloads.protocol import emit
    from workloads.run import one_line_error, write_json_atomic

    parser = argparse.ArgumentParser(prog="python -m workloads.perplexity")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"status": "failed", "error": None, "error_type": None}
    code = 0
    try:
        data = json.loads(Path(args.spec).read_text(encoding="utf-8"))
        record["spec"] = data
        with torch.inference_mode():
            evaluate(data, record)
    except (Exception, KeyboardInterrupt) as exc:
        traceback.print_exc(file=sys.stderr)
        record.update(status="failed", error=one_line_error(exc), error_type=type(exc).__name__)
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    write_json_atomic(out_dir / EVAL_FILE, record)
    emit("done", status=record["status"], error=record["error"])
    return code


if __name__ == "__main__":
    sys.exit(main())
