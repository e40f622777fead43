"""Perplexity per layer set (`eval`), for both faces: the model runs in a supervised child
(``python -m workloads.perplexity``), like a run; the result is stored as a session of kind
"eval", the settings and each set's perplexity in ``record.eval``."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sessions.records import RunEnv, RunRecord, RunStatus, SessionKind
from sessions.store import SessionStore
from workbench.api.runs import EventSink, build_spec
from workloads.atomic import write_json_atomic
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

EVAL_SPEC = "eval_spec.json"  # the child's input: the model's run spec and the eval settings


def parse_layer_sets(text: str) -> list[list[str]]:
    from workloads.catalog import parse_layers

    sets = [parse_layers(part) for part in text.split(";") if part.strip()]
    if not sets:
        raise WorkbenchError("--layers-sets is empty", "e.g. 'L0;L0,L1'")
    return sets


def build_eval(tokens_file: Path, layer_sets: str = "L0;L0,L1", seq_len: int = 1024,
               stride: int = 256, tolerance: float = 0.01, *, workload: str = "dense",
               preset: str = "tiny", target: str = "", checkpoint: str = "",
               device: str = "auto", seed: int = 0, params: dict[str, Any] | None = None,
               token_dtype: str = "uint16", max_tokens: int | None = None,
               simulate_bug: str = "") -> tuple[RunSpec, dict[str, Any]]:
    """The model's run spec and the eval settings, checked before any child starts (the
    token file is read here: a bad one fails fast)."""
    from profilers.runner import resolve_spec
    from workloads.perplexity import read_tokens, windows

    if seq_len < 2 or stride < 1 or stride >= seq_len:
        raise WorkbenchError(f"need --seq-len >= 2 and 1 <= --stride < --seq-len (got "
                             f"{seq_len}, {stride})")
    if tolerance < 0:
        raise WorkbenchError(f"--tolerance must be >= 0, got {tolerance}")
    tokens = read_tokens(tokens_file, token_dtype)
    run_spec = resolve_spec(build_spec(workload=workload, preset=preset, params=params,
                                       device=device, seed=seed, target=target,
                                       checkpoint=checkpoint))
    sets = parse_layer_sets(layer_sets)
    count = min(tokens.size, max_tokens or tokens.size)
    return run_spec, {
        "tokens_file": str(tokens_file.expanduser().resolve()), "token_dtype": token_dtype,
        "seq_len": seq_len, "stride": stride, "layer_sets": sets, "tolerance": tolerance,
        "max_tokens": max_tokens, "simulate_bug": simulate_bug or "",
        "windows": len(windows(count, seq_len, stride)),
    }


def run_eval(run_spec: RunSpec, settings: dict[str, Any], store: SessionStore,
             timeout_s: float = 3600.0, on_event: EventSink | None = None,
             cancel: threading.Event | None = None) -> tuple[RunRecord, dict[str, Any]]:
    """Run the eval child; returns the stored record and the child's result (eval.json)."""
    from profilers.runner import child_env
    from profilers.supervisor import run_supervised

    emit = on_event or (lambda event: None)
    record = store.new_run(run_spec, kind=SessionKind.EVAL,
                           prepare=lambda new: new.eval.update(settings))
    run_dir = store.run_dir(record.id)
    emit({"event": "session", "run_id": record.id, "run_dir": str(run_dir)})
    write_json_atomic(run_dir / EVAL_SPEC, {"run": run_spec.to_dict(), **settings})
    command = [sys.executable, "-m", "workloads.perplexity", "--spec",
               str(run_dir / EVAL_SPEC), "--out", str(run_dir)]
    record.status = RunStatus.RUNNING
    store.save(record)
    outcome = run_supervised(command, run_dir / "run.log", timeout_s, env=child_env(),
                             on_event=on_event, cancel=cancel)
    record.artifacts["log"] = "run.log"
    result: dict[str, Any] = {}
    result_path = run_dir / "eval.json"
    if result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        record.artifacts["eval"] = "eval.json"
    record.env = RunEnv(**(result.get("env") or {}))
    record.status = RunStatus.parse(result.get("status") or "failed")
    record.error, record.error_type = result.get("error"), result.get("error_type")
    if outcome.status in ("timeout", "cancelled"):
        record.status = RunStatus(outcome.status)
        record.error = record.error or f"{outcome.status}; the child was stopped"
    elif record.status is not RunStatus.OK and not record.error:
        record.error = f"the eval process exited with code {outcome.returncode}; see " \
                       f"{run_dir / 'run.log'}"
    sets = result.get("sets") or []
    record.eval.update({k: v for k, v in result.items()
                        if k not in ("spec", "env", "status", "error", "error_type")})
    if record.status is RunStatus.OK and not result.get("ok"):
        failing = [",".join(s["layers"]) for s in sets if not s["ok"]]
        record.error = (f"accuracy regression: perplexity of {'; '.join(failing)} moved more "
                        f"than {settings['tolerance']:.2%} from {','.join(sets[0]['layers'])}")
    record.finished_at = time.time()
    store.save(record)
    emit({"event": "done", "status": record.status.value, "run_id": record.id,
          "error": record.error})
    return record, result


def eval_exit_code(record: RunRecord, result: dict[str, Any]) -> int:
    if record.status is not RunStatus.OK:
        return 2 if record.error_type == "WorkbenchError" else 1
    return 0 if result.get("ok") else 1
