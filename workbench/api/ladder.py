"""The optimization ladder, for both faces: L0, L0+L1, ... all-on, one session per step, and
the table with per-step and cumulative speedups.

Every step runs with the param ``unmet_layers=skip`` (dense, moe, gptoss): a layer whose
requirement is not met (e.g. CUDA graphs on a CPU box) is recorded as not applied with its
reason and the step still runs, so the table shows "needs CUDA" instead of stopping. A plain
`run` keeps failing on an unmet requirement (exit 2). A range in --layers-sets takes the
layers that apply to the workload; the ones it leaves out are printed and recorded with each
run (the table's Layers section lists them with the reason).
"""

from __future__ import annotations

import threading
from typing import Any

from workloads.errors import WorkbenchError


def default_layer_sets(workload: str) -> list[list[str]]:
    """L0, then one more catalog layer per step in (level, name) order, ending all-on. The
    steps are the generic math layers (L0, L1) and the layers that name this workload."""
    from workloads.catalog import LAYERS

    names = sorted((n for n, info in LAYERS.items()
                    if workload in info.applies_to or (not info.applies_to and info.level <= 1)),
                   key=lambda n: (LAYERS[n].level, n))
    return [names[:index + 1] for index in range(len(names))]


def parse_layer_sets(text: str, workload: str | None = None) -> list[list[str]]:
    return [selection.names for selection in select_layer_sets(text, workload)]


def select_layer_sets(text: str, workload: str | None = None) -> list[Any]:
    """Each ';'-separated stack as a ``catalog.LayerSelection``: a range takes the layers
    that apply to ``workload`` and names the ones it left out, with the reason."""
    from workloads.catalog import select_layers

    sets = [select_layers(part, workload) for part in text.split(";") if part.strip()]
    if not sets:
        raise WorkbenchError("--layers-sets is empty", 'e.g. "L0;L0,L1;L0-L3"')
    return sets


def memory_line(workload: str, preset: str, params: dict[str, Any]) -> str | None:
    if workload != "dense":
        return None
    from workbench.export.fmt import fmt_bytes
    from workloads.estimate import estimate_for_preset

    est = estimate_for_preset(preset, {k: v for k, v in params.items()
                                       if k not in ("mode", "unmet_layers")})
    return (f"{fmt_bytes(est.total_bytes)} (weights {fmt_bytes(est.weights_bytes)}, KV cache "
            f"{fmt_bytes(est.kv_cache_bytes)}, activations ~{fmt_bytes(est.activations_bytes)})")


def run_ladder(workload: str, preset: str, layer_sets: list[list[str]], params: dict[str, Any],
               store: Any, *, device: str = "auto", repeat: int = 10, warmup: int = 3,
               timeout_s: float = 900.0, on_event: Any = None,
               cancel: threading.Event | None = None,
               skipped: list[dict[str, str]] | None = None) -> list[Any]:
    """One session per layer set (the front door, workbench.api.runs.run); returns records.
    ``skipped[i]``: the layers set i's range left out (name -> why), recorded with the run."""
    from workbench.api.runs import check_spec, run
    from workloads.spec import RunSpec

    specs = [check_spec(RunSpec(workload=workload, preset=preset, layers=layers,
                                profiler="timer", params={**params, "unmet_layers": "skip"},
                                skipped_layers=dict(skipped[index]) if skipped else {},
                                repeat=repeat, warmup=warmup, timeout_s=timeout_s,
                                device=device, label=f"ladder {','.join(layers)}"))
             for index, layers in enumerate(layer_sets)]  # all checked before the first step runs
    records = []
    for spec in specs:
        records.append(run(spec, store, on_event=on_event, cancel=cancel))
        if cancel is not None and cancel.is_set():
            break
    return records


def ladder_meta(records: list[Any], workload: str, preset: str, params: dict[str, Any],
                repeat: int) -> dict[str, Any]:
    first = next((r for r in records if r.env), None)
    env = first.env if first else {}
    step = next((r.metrics.get("step") for r in records if r.metrics.get("step")), None)
    shape = next((r.details["shape"] for r in records if r.details.get("shape")), None) or {}
    return {"workload": workload, "preset": preset, "device": env.get("device_name"),
            "torch": env.get("torch"), "step": step, "dtype": shape.get("dtype"),
            "repeat": repeat, "memory": memory_line(workload, preset, params)}


def ladder_markdown(records: list[Any], workload: str, preset: str, params: dict[str, Any],
                    repeat: int) -> str:
    """The ladder table (speedups, parity, explanations) as Markdown."""
    from workbench.export.ladder_md import build_ladder, render_ladder_markdown

    return render_ladder_markdown(build_ladder(records),
                                  ladder_meta(records, workload, preset, params, repeat))
