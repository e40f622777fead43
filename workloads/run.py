"""Child-process entry point: ``python -m workloads.run --spec spec.json --out DIR``.

Order of work (phases are emitted as progress events, see ``workloads.protocol``):
  build      resolve the device, build the workload from the catalog with preset + spec params
  reference  apply L0 (exact math) and record the parity reference: same weights, same inputs
  parity     apply the other layers, decode again fed the reference tokens, compare
  warmup     un-timed steps (compilation, autotuning, allocator warm-up happen here)
  measure    ``repeat`` timed steps; NVTX range "aiperf:step" around each on CUDA, and
             cudaProfilerStart/Stop around all of them when the profiler is ncu or nsys
  profile    torch profiler only: a few more steps traced to DIR/trace.json.gz, then one eager
             step's operation inventory (workloads.inventory) into details.inventory
  measure    TTFT / TPOT from one timed generation (generation workloads)
  write      result.json, atomically (temp file + os.replace): never half-written

Any exception ends the run as status "failed" with a one-line error; the traceback goes to
stderr (the parent keeps the log) and the exit code is 1 (130 when interrupted). "done" is
always the last event.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import importlib
import json
import math
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workloads import catalog, distributed, inventory, measure, watchdog
from workloads import memory_profile as memory_profiling
from workloads.atomic import check_target, write_text_atomic
from workloads.environment import collect_env, resolve_device
from workloads.errors import WorkbenchError
from workloads.interface import Workload
from workloads.layers import LayerOutcome, apply_layers, with_skipped
from workloads.parity import compare
from workloads.protocol import emit
from workloads.rank_results import RANK_RESULT, RANK_TRACE, TRACES_DIR, merge_rank_results
from workloads.spec import NCU_SCOPES, RunSpec, replays_kernels

RESULT_FILE = "result.json"
TRACE_FILE = "trace.json.gz"
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
METRIC_KEYS = ("latency_ms", "step", "tokens_per_step", "tokens_per_s", "prefill_ms",
               "prefill_tokens_per_s", "ttft_ms", "tpot_ms", "peak_mem_bytes",
               "flops_per_step", "bytes_per_step", "achieved_tflops", "achieved_gb_s")
DEFAULT_PROFILE_STEPS = 3


class ChildResult:
    """What result.json will say; filled in as the run goes so a failure keeps what is known.
    (The parent turns it into the stored ``sessions.records.RunRecord``.)"""

    def __init__(self) -> None:
        self.status = "failed"
        self.error: str | None = None
        self.error_type: str | None = None
        self.spec: dict[str, Any] | None = None
        self.env: dict[str, Any] | None = None
        self.metrics: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
        self.parity: dict[str, Any] | None = None
        self.layers: list[LayerOutcome] = []
        self.artifacts: dict[str, str] = {}
        self.details: dict[str, Any] = {}  # the workload's own report
        self.dist = distributed.DistContext()  # torchrun rank, set once the group is joined

    def fail(self, exc: BaseException) -> None:
        self.status = "failed"
        self.error = one_line_error(exc)
        self.error_type = type(exc).__name__

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "error": self.error, "error_type": self.error_type,
            "spec": self.spec, "env": self.env, "metrics": self.metrics,
            "parity": self.parity, "layers_applied": [o.to_dict() for o in self.layers],
            "artifacts": self.artifacts, "details": self.details,
        }


def one_line_error(exc: BaseException, limit: int = 400) -> str:
    message = exc.one_line() if isinstance(exc, WorkbenchError) else " ".join(str(exc).split())
    if isinstance(exc, KeyboardInterrupt) and not message:
        message = "interrupted"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN/Infinity: a metric that is not a number is unknown (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """result.json through the project's one atomic writer (``workloads.atomic``), strict JSON:
    a metric that is not a finite number is written as null."""
    text = json.dumps(finite_or_none(payload), indent=2, allow_nan=False, default=str)
    write_text_atomic(path, text + "\n")


def load_workload(spec: RunSpec) -> tuple[Workload, dict[str, Any]]:
    if spec.target:  # bring your own model: the target's build() replaces the catalog entry
        from workloads.targets import build_target

        return build_target(spec.target, dict(spec.params)), dict(spec.params)
    info = catalog.get_workload(spec.workload)
    params = catalog.get_preset(spec.workload, spec.preset)
    params.update(spec.params)
    module = importlib.import_module(info.module)
    return module.create_workload(), params


def torch_dtype(name: Any) -> torch.dtype:
    try:
        return TORCH_DTYPES[name]
    except (KeyError, TypeError):
        raise WorkbenchError(f"unsupported dtype {name!r}",
                             f"choose one of: {', '.join(TORCH_DTYPES)}") from None


def profile_with_torch(step: Callable[[], Any], reset: Callable[[], None],
                       device: torch.device, out_dir: Path, steps: int,
                       name: str = TRACE_FILE, align: Callable[[], None] | None = None) -> str:
    """Trace ``steps`` extra steps (after the timed ones, so tracing overhead never touches
    the latency samples) and write a gzipped Chrome trace.

    ``align`` (multi-rank runs: a barrier) runs after one traced-and-discarded warm-up step:
    each rank starts its profiler at a different moment (CUPTI start-up takes tens of ms), and
    without it the first collective of the early rank waited for the late one inside the trace
    — on 2 H200s that showed as 80% "communication" on rank 0 against 8% on rank 1."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    schedule = None
    if align is not None:
        schedule = torch.profiler.schedule(wait=0, warmup=1, active=steps, repeat=1)
    with torch.profiler.profile(activities=activities, record_shapes=True, with_flops=True,
                                schedule=schedule) as profiler:
        if align is not None:
            reset()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            align()
            profiler.step()  # warm-up over: the active window starts here on every rank
        for index in range(steps):
            reset()
            with torch.profiler.record_function(measure.STEP_RANGE):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            emit("step", phase="profile", i=index + 1, n=steps)
            if align is not None:
                profiler.step()
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / name.removesuffix(".gz")
    temp_path = out_dir / f".{name}.tmp"
    try:  # a full disk or a kill leaves neither the plain trace nor a partial .gz behind
        profiler.export_chrome_trace(str(json_path))
        if not json_path.is_file():  # Kineto logs a failed write and returns normally
            free = shutil.disk_usage(out_dir).free
            raise OSError(errno.ENOSPC if free < (1 << 20) else errno.EIO,
                          "torch.profiler could not write its trace"
                          + (" (no space left on the device)" if free < (1 << 20) else ""),
                          str(json_path))
        check_target(out_dir / name)
        with open(json_path, "rb") as source, gzip.open(temp_path, "wb", compresslevel=6) as sink:
            shutil.copyfileobj(source, sink)
        os.replace(temp_path, out_dir / name)
    finally:  # (Kineto itself writes NAME.tmp first and leaves it when the disk is full)
        for leftover in (temp_path, json_path, json_path.with_name(json_path.name + ".tmp")):
            _remove(leftover)
    return name


def _remove(path: Path) -> None:
    """Delete ``path`` and give its space back now: emptied first, because a writer that
    failed may still hold it open (an unlinked open file keeps its blocks)."""
    try:
        os.truncate(path, 0)
    except OSError:
        pass
    path.unlink(missing_ok=True)


def ncu_sample(workload: Workload, spec: RunSpec) -> Any:
    """What ncu replays: ``scope=auto`` (default) a representative sample where the workload
    offers one (``Workload.profile_sample``: one decoder block of an eager model), else the
    whole step; ``scope=step`` every kernel of the step. ncu's kernel replay costs about half a
    second per kernel on an H100 whatever the metric list, so an eager 8B decode step (~1,200
    kernels) takes ten minutes and one of its 32 identical blocks about twenty seconds."""
    scope = str(spec.profiler_options.get("scope", "auto"))
    if scope not in NCU_SCOPES:
        raise WorkbenchError(f"unknown ncu scope {scope!r}",
                             "use --profiler-option scope=auto or scope=step")
    if scope == "step" or spec.profiler_options.get("kernel_regex") \
            or spec.profiler_options.get("launch_count") is not None:
        return None  # the user targets kernels themselves
    return workload.profile_sample()


def describe_scope(sample: Any, applied_layers: Any) -> dict[str, Any]:
    """What the ncu run replayed, for the record and the report."""
    if sample is None:
        return {"scope": "step", "what": "every kernel of the measured step"}
    scope = sample.describe()
    names = {str(layer.name) for layer in (applied_layers or []) if layer.applied}
    notes = []
    if "L5" in names:
        notes.append("compiled step: the sampled block's edges are graph breaks (the profiler "
                     "range calls run eagerly), so fusions across those edges differ")
    if "L4" in names and sample.graph_bypass is not None:
        notes.append("CUDA graph: the profiled step launches the kernels the graph captured "
                     "directly (ncu replays each kernel alone either way)")
    if notes:
        scope["note"] = scope.get("note", "") + " " + "; ".join(notes) + "."
    return scope


def throughput_metrics(workload: Workload, samples_ms: list[float]) -> dict[str, Any]:
    stats = measure.latency_stats(samples_ms)
    median_s = stats["median"] / 1e3
    flops, moved = workload.flops_per_step(), workload.bytes_per_step()
    tokens = workload.tokens_per_step()

    def rate(amount: float | None, unit: float) -> float | None:
        return amount / median_s / unit if amount is not None and median_s > 0 else None

    return {
        "latency_ms": stats, "step": workload.step_name, "tokens_per_step": tokens,
        "tokens_per_s": rate(tokens, 1), "flops_per_step": flops, "bytes_per_step": moved,
        "achieved_tflops": rate(flops, 1e12), "achieved_gb_s": rate(moved, 1e9),
    }


def execute(spec: RunSpec, out_dir: Path, record: ChildResult) -> None:
    device = resolve_device(spec.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("device 'cuda' requested but no CUDA GPU is available",
                             "use --device cpu or auto")
    record.dist, device = distributed.init_from_env(device)  # torchrun: join the group
    record.env = collect_env(device)
    layer_names = catalog.parse_layers(spec.layers)

    emit("phase", phase="build", message=f"{spec.workload}/{spec.preset} on {device.type}")
    memory_profile = memory_profiling.for_run(spec.profiler, device, out_dir)
    memory_profile.mark("build")
    workload, params = load_workload(spec)
    if spec.checkpoint:
        from workloads import checkpoint

        params, hf_config = checkpoint.prepare_params(spec.checkpoint, params, spec.params)
    measure.reset_peak_memory(device)
    torch.manual_seed(spec.seed)
    try:
        workload.build(device, torch_dtype(params.get("dtype", "float32")), params,
                       seed=spec.seed)
    except Exception as exc:
        if not spec.target or isinstance(exc, WorkbenchError):
            raise
        from workloads.errors import TargetError

        raise TargetError(f"target {spec.target!r} failed in build(): "
                          f"{one_line_error(exc)}", "see the run log") from exc
    if spec.checkpoint:
        record.details["checkpoint"] = checkpoint.load_checkpoint(workload, spec.checkpoint,
                                                                hf_config)
    if record.dist.enabled:  # every rank built the full model from the seed: keep a shard
        record.details["distributed"] = {**record.dist.to_dict(),
                                       "plan": distributed.shard_workload(workload, record.dist)}
        measure.reset_peak_memory(device)
    record.details.update(workload.extra())
    inputs = workload.make_inputs(spec.seed)

    # Under ncu/nsys every CUDA call is intercepted and the parity decodes (2 x new_tokens
    # steps) cost minutes on an 8B model; their outputs are the same as in a timer run of the
    # same layers, so the profiled run skips the comparison and says so.
    replay_profiler = replays_kernels(spec.profiler)
    stacked = [name for name in layer_names if name != "L0"]
    if replay_profiler:
        apply_layers(["L0"], workload, device, record.layers)
        apply_layers(stacked, workload, device, record.layers)
        record.parity = {"ok": None, "skipped": f"not compared under {spec.profiler}; "
                         "a --profiler timer run of the same layers checks parity"}
    else:
        emit("phase", phase="reference", message="L0 reference decode")
        memory_profile.mark("reference")
        apply_layers(["L0"], workload, device, record.layers)
        reference = workload.parity_outputs(inputs)
        record.details["reference_outputs"] = distributed.outputs_fingerprint(reference)
        memory_profile.mark("parity")
        emit("phase", phase="parity",
             message=f"applying {', '.join(stacked) or 'no layers over L0'}; comparing to L0")
        apply_layers(stacked, workload, device, record.layers)
        candidate = workload.parity_outputs(inputs, reference.tokens)
        parity = compare(reference, candidate, workload.compute_precision)
        record.parity = parity.to_dict()
        if not parity.ok:
            emit("phase", phase="parity", message=f"parity FAILED: max_rel_err "
                 f"{parity.max_rel_err:.3g}, top-1 {parity.top1_agreement:.3f}")

    record.layers = with_skipped(record.layers, spec.skipped_layers)  # what a range left out
    plan = measure.RepeatPlan(spec.repeat, spec.warmup,
                              profiler_range=replay_profiler)
    if spec.profiler == "ncu" and device.type == "cuda":
        # The gate's hooks go in before the step first runs: compile and graph capture
        # happen in the warm-up, outside the profiled range, and must see them.
        plan.sample = ncu_sample(workload, spec)
        if plan.sample is not None:
            plan.gate = measure.ProfilerGate(plan.sample.spans)
        record.details["profile_scope"] = describe_scope(plan.sample, record.layers)
    memory_profile.mark("prepare")
    workload.prepare(inputs)
    memory_profile.mark("warmup" if spec.warmup else "measure")
    emit("phase", phase="warmup", message=f"{spec.warmup} warm-up steps")

    def step() -> Any:
        return workload.step(inputs)

    def on_step(phase: str, index: int, total: int) -> None:
        if phase == "warmup" and index == total:
            memory_profile.mark("measure")
        if phase == "measure" and index == 1:
            emit("phase", phase="measure", message=f"{total} timed steps")
        emit("step", phase=phase, i=index, n=total)

    samples = measure.run_repeats(step, workload.reset, device, plan, on_step)
    if spec.profiler == "memory":
        summary, snapshot = memory_profile.finish(workload)
        record.details["memory_profile"] = summary
        if snapshot:
            record.artifacts["memory_snapshot"] = snapshot
    record.metrics.update(throughput_metrics(workload, samples))
    emit("metric", name="latency_ms", value=record.metrics["latency_ms"]["median"], unit="ms")
    if record.metrics["tokens_per_s"] is not None:
        emit("metric", name="tokens_per_s", value=record.metrics["tokens_per_s"], unit="tok/s")

    if spec.profiler == "torch":
        steps = int(spec.profiler_options.get("steps", DEFAULT_PROFILE_STEPS))
        emit("phase", phase="profile", message=f"torch profiler over {steps} steps")
        if record.dist.enabled:  # one trace per rank in traces/, read as one session
            profile_with_torch(step, workload.reset, device, out_dir / TRACES_DIR, steps,
                               RANK_TRACE.format(rank=record.dist.rank),
                               align=distributed.barrier)
            record.artifacts["trace"] = TRACES_DIR
        else:
            record.artifacts["trace"] = profile_with_torch(step, workload.reset, device,
                                                           out_dir, steps)
        # What each profiled kernel computes (the trace cannot say inside graphs or compiled
        # code): one more step, eager, with every op's shapes; after the trace, so untimed.
        emit("phase", phase="profile", message="operation inventory of one eager step")
        record.details["inventory"] = inventory.record_or_reason(workload, inputs, device)

    if workload.generates and not replay_profiler:
        emit("phase", phase="measure", message="TTFT / TPOT from one timed generation")
        generation = measure.time_generation(lambda: workload.prefill(inputs),
                                             workload.decode_rest, device)
        record.metrics.update(generation)
        prefill_tokens = workload.prefill_tokens()
        if prefill_tokens and generation["ttft_ms"]:
            record.metrics["prefill_ms"] = generation["ttft_ms"]
            record.metrics["prefill_tokens_per_s"] = prefill_tokens / (generation["ttft_ms"] / 1e3)

    record.details.update(workload.extra())  # again: some facts exist only after running
    if record.dist.enabled:
        from workloads.layers.expert_parallel import dispatch_stats

        record.details["distributed"]["dispatch"] = dispatch_stats(workload.model)
    peak_bytes, peak_source = measure.peak_memory(device)
    record.metrics["peak_mem_bytes"] = peak_bytes
    record.details["peak_mem_source"] = peak_source
    record.status = "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="path to the run spec JSON")
    parser.add_argument("--out", required=True, help="folder for result.json and artifacts")
    args = parser.parse_args(argv)
    # Cancel is SIGINT (then SIGKILL); a child started from a background job inherits SIGINT
    # as ignored, so take it back to get a "failed: interrupted" result instead of a kill.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Under ncu, nsys or torchrun our parent is the tool, not the workbench: watch the
    # workbench itself and take this process group down with it (workloads.watchdog).
    watchdog.start_watchdog()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank, world, _ = distributed.env_rank()
    result_file = RANK_RESULT.format(rank=rank) if world > 1 else RESULT_FILE
    if world > 1 and rank > 0:  # only rank 0 talks to the parent; the others keep a log
        sys.stdout = sys.stderr = open(out_dir / f"rank{rank}.log", "a", buffering=1)  # noqa: SIM115

    record = ChildResult()
    exit_code = 0
    try:
        try:
            spec_text = Path(args.spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise WorkbenchError(f"cannot read spec {args.spec}: {exc.strerror}") from None
        spec = RunSpec.from_json(spec_text).validate()
        record.spec = spec.to_dict()
        with torch.inference_mode():
            execute(spec, out_dir, record)
    except (Exception, KeyboardInterrupt) as exc:
        traceback.print_exc(file=sys.stderr)
        record.fail(exc)
        exit_code = 130 if isinstance(exc, KeyboardInterrupt) else 1

    emit("phase", phase="write", message=RESULT_FILE)
    try:
        write_json_atomic(out_dir / result_file, record.to_dict())
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        record.fail(exc)
        exit_code = 1
    left_cleanly = True
    if record.dist.enabled:
        exit_code, left_cleanly = merge_ranks(record, out_dir, exit_code)
    emit("done", status=record.status, error=record.error)
    if not left_cleanly:  # destroy_process_group hung: the results are written, leave anyway
        print(f"destroy_process_group did not return within {distributed.SHUTDOWN_TIMEOUT_S:.0f} s;"
              " leaving without it", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    return exit_code


def merge_ranks(record: ChildResult, out_dir: Path, exit_code: int) -> tuple[int, bool]:
    """Gather every rank's result on rank 0 and write the merged result.json there; then leave
    the process group. Returns the exit code and whether the group was left cleanly."""
    try:
        gathered = distributed.gather_objects(record.to_dict(), record.dist)
        if gathered is not None:
            merged = merge_rank_results(gathered, record.dist.world_size, record.dist.backend)
            write_json_atomic(out_dir / RESULT_FILE, merged)
            record.status, record.error = merged["status"], merged.get("error")
            exit_code = exit_code or (0 if record.status == "ok" else 1)
    except Exception:  # the parent merges the per-rank files instead
        traceback.print_exc(file=sys.stderr)
        exit_code = exit_code or 1
    finally:
        left_cleanly = distributed.shutdown()
    return exit_code, left_cleanly


if __name__ == "__main__":
    code = main()
    if distributed.env_rank()[1] > 1:
        # A rank's results are written and its group left: skip interpreter teardown, where a
        # gloo rank with a torch-profiler trace aborted (SIGABRT in a C++ destructor) in
        # roughly 1 run in 10 on the CPU box, failing a run whose every result was on disk.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
