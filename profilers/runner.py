"""The front door for running a workload: ``run(spec, store, on_event, cancel) -> RunRecord``.

Both the CLI and the app call this. It validates the spec against the torch-free catalog,
creates the session, launches ``python -m workloads.run`` under the chosen profiler wrapper in
a supervised process group with NVML telemetry beside it, and records the outcome: ok, failed,
cancelled or timeout — a failed run is a record, not an exception. Only bad input (unknown
workload / preset / layer, an unavailable profiler) raises WorkbenchError, before any session.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from profilers import torchrun
from profilers.nvml import TelemetrySampler
from profilers.registry import get_wrapper
from profilers.supervisor import child_environment, run_supervised
from sessions.records import Metrics, Parity, RunEnv, RunRecord, RunStatus
from sessions.store import SessionStore
from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

EventSink = Callable[[dict[str, Any]], None]

# The folder that holds the workloads package: the child must import it even when the
# workbench runs from a source checkout rather than an installed distribution.
_CODE_ROOT = str(Path(__file__).resolve().parent.parent)


def resolve_spec(spec: RunSpec) -> RunSpec:
    """Validate against the catalog and normalize layers; raises WorkbenchError on bad input."""
    spec.validate()
    if spec.target:  # bring your own model: no catalog entry, the child builds the target
        from workloads.targets import check_target

        spec.target = check_target(spec.target)
    else:
        catalog.get_preset(spec.workload, spec.preset)
        if catalog.get_workload(spec.workload).kind == "analytic":
            raise WorkbenchError(f"{spec.workload!r} is an analytic estimate, not a run",
                                 f"use `aiperf-workbench {spec.workload}`")
    if spec.checkpoint:
        from workloads.checkpoint import check_checkpoint

        spec.checkpoint = check_checkpoint(spec.checkpoint)
    spec.layers = catalog.parse_layers(spec.layers)
    for name in spec.layers:
        layer = catalog.get_layer(name)
        if layer.applies_to and spec.workload not in layer.applies_to:
            raise WorkbenchError(f"layer {name} does not apply to workload {spec.workload!r}",
                                 f"it applies to: {', '.join(layer.applies_to)}")
    return spec


def workload_python() -> str:
    """The interpreter that runs workloads: this one, or $AIPERF_WORKLOAD_PYTHON (an app
    installed on its own, e.g. with pipx, driving the Python that has the GPU build of torch)."""
    return os.environ.get("AIPERF_WORKLOAD_PYTHON") or sys.executable


def child_command(spec_path: Path, out_dir: Path) -> list[str]:
    return [workload_python(), "-m", "workloads.run", "--spec", str(spec_path), "--out",
            str(out_dir)]


def child_env() -> dict[str, str]:
    """The child's environment: ours, less the workbench's secrets (``SECRET_ENV``: the LLM
    key is for `advise`, not for a workload, a --target or a profiler)."""
    env = child_environment(None)
    env["PYTHONUNBUFFERED"] = "1"
    # A source checkout goes on the child's path; an installed distribution's site-packages
    # must not (another workload Python would pick up this interpreter's compiled packages).
    root = _CODE_ROOT if Path(_CODE_ROOT).name not in ("site-packages", "dist-packages") else None
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run(spec: RunSpec, store: SessionStore, on_event: EventSink | None = None,
        cancel: threading.Event | None = None) -> RunRecord:
    spec = resolve_spec(spec)
    torchrun.check_spec(spec)
    wrapper = get_wrapper(spec.profiler)
    capability = wrapper.check()
    if not capability.available:
        raise WorkbenchError(capability.reason)

    record = store.new_run(spec)
    run_dir = store.run_dir(record.id)
    emit = on_event or (lambda event: None)
    emit({"event": "session", "run_id": record.id, "run_dir": str(run_dir)})
    sampler: TelemetrySampler | None = None
    try:
        spec_path = run_dir / "spec.json"
        wrapped = wrapper.wrap(child_command(spec_path, run_dir), run_dir, spec)
        if torchrun.is_distributed(spec):  # N ranks under torchrun instead of one child
            wrapped = torchrun.wrap(spec, spec_path, run_dir, wrapped)
        record.status = RunStatus.RUNNING
        store.save(record)
        if spec.telemetry:
            sampler = TelemetrySampler(
                on_sample=lambda s: emit({"event": "telemetry", **s})).start()
        outcome = run_supervised(wrapped.cmd, run_dir / "run.log", spec.timeout_s,
                                 env={**child_env(), **wrapped.env}, on_event=on_event,
                                 cancel=cancel)
        if sampler is not None:
            sampler.stop()
        record.artifacts["log"] = "run.log"
        if torchrun.is_distributed(spec):
            torchrun.ensure_merged_result(run_dir, spec)
        _apply_result(record, run_dir)
        if outcome.status == "timeout":
            record.status = RunStatus.TIMEOUT
            record.error = f"timed out after {spec.timeout_s:g} s (--timeout); the child was stopped"
        elif outcome.status == "cancelled":
            record.status = RunStatus.CANCELLED
            record.error = "cancelled by the user; the child was stopped"
        elif outcome.returncode != 0 or record.status is not RunStatus.OK:
            record.status = RunStatus.FAILED
            record.error = record.error or (
                f"the workload process exited with code {outcome.returncode}; see {run_dir / 'run.log'}")
        else:
            try:
                log_text = (run_dir / "run.log").read_text(errors="replace")
                collect = torchrun.collect if torchrun.is_distributed(spec) else wrapper.collect
                record.artifacts.update(collect(run_dir, spec, log_text))
            except WorkbenchError as exc:
                record.status, record.error = RunStatus.FAILED, exc.one_line()
    except BaseException as exc:  # a crash in supervision must still leave a record
        record.status = RunStatus.CANCELLED if isinstance(exc, KeyboardInterrupt) \
            else RunStatus.FAILED
        record.error = record.error or f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with signals_held():  # a second Ctrl-C / SIGTERM must not cut the record short
            if sampler is not None:
                sampler.stop()
                if sampler.samples:
                    try:
                        sampler.write_csv(run_dir / "telemetry.csv")
                        record.artifacts["telemetry"] = "telemetry.csv"
                    except OSError as exc:  # a full disk: the summary below still holds
                        record.artifacts.pop("telemetry", None)
                        record.notes.append(f"telemetry.csv not written: {exc.strerror}")
            record.telemetry = sampler.summary() if sampler is not None else {
                "available": False, "reason": "telemetry off"}
            record.finished_at = time.time()
            store.save(record)
        emit({"event": "done", "status": record.status.value, "run_id": record.id,
              "error": record.error})
    return record


@contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP (their handlers run after the block) while the final
    record is written: Python's handlers run between any two bytecodes, so a signal mid-write
    would otherwise leave the session `running` until the next start-up sweep."""
    held = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _apply_result(record: RunRecord, run_dir: Path) -> None:
    """Copy what the child wrote in result.json (workloads.protocol) into the record's typed
    fields (if it wrote one)."""
    path = run_dir / "result.json"
    if not path.is_file():
        record.status = RunStatus.FAILED
        return
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        record.status, record.error = RunStatus.FAILED, f"result.json is corrupt: {exc}"
        return
    record.status = RunStatus.parse(result.get("status") or "failed")
    record.error = result.get("error")
    record.error_type = result.get("error_type")
    record.metrics = Metrics(**(result.get("metrics") or {}))
    record.parity = Parity(**(result.get("parity") or {}))
    record.env = RunEnv(**(result.get("env") or {}))
    record.layers_applied = list(result.get("layers_applied") or [])
    record.details = dict(result.get("details") or {})
    record.artifacts["result"] = "result.json"
    for role, rel in (result.get("artifacts") or {}).items():
        record.artifacts[role] = rel
