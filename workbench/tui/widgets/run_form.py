"""The run form's fields: what each input is, how its text becomes a RunSpec field, and back
(a stored spec shown again for a re-run). Text only; the API checks the spec itself."""

from __future__ import annotations

from typing import Any, Literal

from textual.dom import DOMNode
from textual.widgets import Input

from workbench.api.params import parse_param
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

# input id -> (label, where it goes: a preset param or a RunSpec field, Input type)
InputType = Literal["integer", "number"]
PARAMS: dict[str, tuple[str, str, InputType]] = {
    "batch": ("batch", "param", "integer"),
    "prompt_len": ("seq length", "param", "integer"),
    "new_tokens": ("new tokens", "param", "integer"),
    "repeat": ("repeats", "spec", "integer"),
    "warmup": ("warm-up", "spec", "integer"),
    "timeout_s": ("timeout s", "spec", "number"),
}
MINIMUM = {"warmup": 0}  # every other number must be > 0
# free-text RunSpec fields: input id -> (label, placeholder)
TEXT_FIELDS: dict[str, tuple[str, str]] = {
    "label": ("label", "a note stored with the session"),
    "profiler_options": ("prof. options", "KEY=VALUE … (e.g. kernel_regex=gemm)"),
}


def field_text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def profiler_options_text(options: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in options.items())


def read_fields(screen: DOMNode, preset_values: dict[str, Any],
                defaults: RunSpec) -> dict[str, Any]:
    """The form's RunSpec keyword arguments (``workbench.api.runs.build_spec``): parameters
    that differ from the preset (as ``run --param`` would give them), the run's numbers, the
    label and the profiler options (the CLI's KEY=VALUE parser; ``defaults``' until those
    fields are mounted)."""
    fields: dict[str, Any] = {"params": {}}
    for key, (label, where, kind) in PARAMS.items():
        field = screen.query_one(f"#param-{key}", Input)
        raw = field.value.strip()
        if field.disabled and not raw:
            continue
        try:
            value: float | int = float(raw) if kind == "number" else int(raw)
        except ValueError:
            raise WorkbenchError(f"{label} must be a number, got {raw!r}") from None
        minimum = MINIMUM.get(key)
        if (value < minimum) if minimum is not None else (value <= 0):
            bound = f">= {minimum}" if minimum is not None else "> 0"
            raise WorkbenchError(f"{label} must be {bound}, got {raw}")
        if where == "param":
            if value != preset_values.get(key):  # an override, as `run --batch` is
                fields["params"][key] = value
        else:
            fields[key] = value
    label_input = next(iter(screen.query("#text-label").results(Input)), None)
    fields["label"] = defaults.label if label_input is None else label_input.value.strip()
    typed = next(iter(screen.query("#text-profiler_options").results(Input)), None)
    fields["profiler_options"] = dict(defaults.profiler_options) if typed is None else \
        dict(parse_param(option) for option in typed.value.split())
    return fields
