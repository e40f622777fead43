"""Running a workload, for both faces: the spec with its defaults (one place), every check that
can be made before a child starts, the run (``profilers.runner``), its cancel, a re-run.

Bad input is a ``WorkbenchError`` (one line, exit 2) raised before anything is stored: an
unknown workload, preset, layer or parameter, a shape the model cannot take (batch 0,
prompt_len + new_tokens beyond max_seq), a layer this machine cannot run (L4 on a CPU), a
profiler that is not installed. A run that starts and then fails is a record, not an error.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from workbench.api.device import DeviceProbe, layer_blocker, probe_devices
from workloads import catalog
from workloads.errors import WorkbenchError
from workloads.spec import AUTO, RunSpec

EventSink = Callable[[dict[str, Any]], None]
# The positive integers every generation workload takes (the dense model checks more itself).
_POSITIVE = ("batch", "prompt_len", "new_tokens", "max_seq")
_DTYPES = ("float32", "bfloat16", "float16")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def build_spec(*, workload: str = "dense", preset: str = "tiny",
               layers: str | list[str] = "L0", profiler: str = "timer",
               params: dict[str, Any] | None = None, repeat: int | None = None,
               warmup: int | None = None, timeout_s: float = 600.0, device: str = "auto",
               seed: int = 0, label: str = "", profiler_options: dict[str, Any] | None = None,
               telemetry: bool = True, target: str = "", checkpoint: str = "",
               nproc_per_node: int = 1, nnodes: int = 1, rdzv_endpoint: str = "") -> RunSpec:
    """The spec both faces run: repeats and warm-up left out (None) take the profiler's
    defaults (5 and 2; 1 and 1 under ncu / nsys), a layer range is expanded for the workload,
    a bring-your-own target names the workload. A range takes the layers that apply to the
    workload; the ones it leaves out are in ``spec.skipped_layers`` with the reason."""
    selection = catalog.select_layers(layers, workload if not target else None)
    spec = RunSpec(
        workload=workload, preset=preset, layers=selection.names,
        skipped_layers=dict(selection.skipped), profiler=profiler, params=dict(params or {}),
        repeat=AUTO if repeat is None else repeat, warmup=AUTO if warmup is None else warmup,
        timeout_s=timeout_s, seed=seed, device=device, label=label,
        profiler_options=dict(profiler_options or {}), telemetry=telemetry, target=target,
        checkpoint=checkpoint, nproc_per_node=nproc_per_node, nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint)
    if spec.target:
        from workloads.targets import parse_target

        spec.workload, spec.preset = parse_target(spec.target).display_name, ""
    return spec


def check_spec(spec: RunSpec, probe: DeviceProbe | None = None) -> RunSpec:
    """Everything checkable before a child starts; returns the resolved spec (layers in
    order, paths absolute). ``probe``: the GPUs, when the caller has probed them already."""
    from profilers import torchrun
    from profilers.registry import profiler_entry
    from profilers.runner import resolve_spec

    spec = resolve_spec(spec)
    torchrun.check_spec(spec)
    check_params(spec)
    requires = [(name, catalog.get_layer(name).requires) for name in spec.layers]
    if spec.device == "cuda" or any(req for _, req in requires):
        probe = probe if probe is not None else probe_devices()
        if spec.device == "cuda" and not probe.cuda:
            raise WorkbenchError(f"device 'cuda' requested but no CUDA GPU is available "
                                 f"({probe.reason})", "use --device cpu or auto")
        if spec.params.get("unmet_layers") != "skip":
            for name, req in requires:
                reason = layer_blocker(req, probe, spec.device)
                if reason:
                    raise WorkbenchError(
                        f"layer {name} cannot run here: {reason}",
                        "leave it out (or --param unmet_layers=skip records it as not applied)")
    capability = profiler_entry(spec.profiler).check()
    if not capability.available:
        raise WorkbenchError(capability.reason)
    return spec


def check_params(spec: RunSpec) -> None:
    """The workload parameters the model would refuse, refused here with the child's words.
    A bring-your-own target or a checkpoint brings its own shape: the child checks those."""
    if spec.target or spec.checkpoint:
        return
    info = catalog.get_workload(spec.workload)
    merged = {**catalog.get_preset(spec.workload, spec.preset), **spec.params}
    if spec.workload == "dense":
        from workloads.dense_params import resolve_shape

        resolve_shape(merged)
        return
    if info.kind != "model":
        return  # micro-workloads check their own (typed) parameters in the child
    for key in _POSITIVE:
        value = merged.get(key)
        if key in merged and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
            raise WorkbenchError(f"{spec.workload} param {key} must be a positive integer, "
                                 f"got {value!r}")
    if "dtype" in merged and merged["dtype"] not in _DTYPES:
        raise WorkbenchError(f"unsupported dtype {merged['dtype']!r}",
                             f"choose one of: {', '.join(_DTYPES)}")
    if all(k in merged for k in ("prompt_len", "new_tokens", "max_seq")) and \
            merged["prompt_len"] + merged["new_tokens"] > merged["max_seq"]:
        raise WorkbenchError(
            f"prompt_len + new_tokens ({merged['prompt_len'] + merged['new_tokens']}) exceeds "
            f"max_seq ({merged['max_seq']})", "raise max_seq or shorten the run")


def run(spec: RunSpec, store: SessionStore, on_event: EventSink | None = None,
        cancel: threading.Event | None = None, probe: DeviceProbe | None = None) -> RunRecord:
    """Check ``spec`` (nothing is stored when it is bad), then run it: blocks until the child
    ends; progress events go to ``on_event`` on this thread; returns the stored record.
    ``cancel``: set it from any thread (a key in the app, a signal in the CLI) and the child is
    stopped (SIGINT, then SIGKILL of its process group) and recorded as cancelled."""
    from profilers.runner import run as run_child

    return run_child(check_spec(spec, probe), store, on_event=on_event, cancel=cancel)


def rerun_spec(record: RunRecord) -> RunSpec:
    """The spec to run a stored session's configuration again."""
    if record.spec is None:
        raise WorkbenchError(f"session {record.id} analyzed artifacts from elsewhere: there is "
                             "no configuration to run again")
    return copy.deepcopy(record.spec)


def exit_code(record: RunRecord) -> int:
    """0 ok; 2 a user mistake the child found (e.g. a requirement); 130 cancelled; else 1."""
    if record.status is RunStatus.OK:
        return EXIT_OK
    if record.error_type == "WorkbenchError":
        return EXIT_USAGE
    return EXIT_CANCELLED if record.status is RunStatus.CANCELLED else EXIT_FAILED
