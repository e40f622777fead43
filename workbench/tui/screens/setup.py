"""Run setup: workload and preset, layers (unmet requirements disabled, with the reason),
profiler, parameters, and the memory estimate before anything runs."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from workbench.api.device import DeviceProbe, layer_blocker
from workbench.api.services import Services
from workbench.export.fmt import fmt_bytes
from workbench.tui.screens.messages import RunRequested
from workbench.tui.widgets.layer_checkbox import LayerCheckbox
from workloads.catalog import LAYERS, get_preset, list_workloads
from workloads.errors import WorkbenchError
from workloads.spec import PROFILER_TRAITS, PROFILERS, RunSpec

# input id -> (label, where it goes: a preset param or a RunSpec field)
PARAMS: dict[str, tuple[str, str]] = {
    "batch": ("batch", "param"),
    "prompt_len": ("seq length", "param"),
    "new_tokens": ("new tokens", "param"),
    "repeat": ("repeats", "spec"),
    "timeout_s": ("timeout s", "spec"),
}


class RunSetupScreen(Screen):
    CSS_PATH = "setup.tcss"
    BINDINGS = [
        Binding("ctrl+r,f5", "run", "Run", id="setup.run"),
        Binding("ctrl+e", "estimate", "Estimate", id="setup.estimate", show=False),
    ]

    class ProbeDone(Message):
        def __init__(self, probe: DeviceProbe) -> None:
            super().__init__()
            self.probe = probe

    def __init__(self, services: Services, default_profiler: str = "timer") -> None:
        super().__init__()
        self.services = services
        self.default_profiler = default_profiler
        self.workloads = {w.name: w for w in list_workloads()}
        self.workload = next(iter(self.workloads))
        self.probe: DeviceProbe | None = None

    # ---- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-left"):
                yield Static(Text("Workload", style="bold"), classes="section")
                yield OptionList(*[Option(self._workload_label(w), id=w.name)
                                   for w in self.workloads.values()], id="workloads")
                yield Static(Text(""), id="workload-description")
                yield Static(Text("Preset", style="bold"), classes="section")
                info = self.workloads[self.workload]
                yield Select([(p, p) for p in info.presets], id="preset", allow_blank=False,
                             value=info.default_preset, compact=True)
                yield Static(Text("Profiler", style="bold"), classes="section")
                yield Select([(p, p) for p in PROFILERS], id="profiler", allow_blank=False,
                             value=self.default_profiler, compact=True)
                yield Static(Text("probing GPU…"), id="device")
            with VerticalScroll(id="setup-right"):
                yield Static(Text("Layers", style="bold"), classes="section")
                for layer in LAYERS.values():
                    yield LayerCheckbox(self._layer_label(layer.name), value=layer.level == 0,
                                        id=f"layer-{layer.name}", compact=True,
                                        disabled=layer.level == 0)
                    yield Static(Text(""), id=f"reason-{layer.name}", classes="layer-reason")
                yield Static(Text("Parameters", style="bold"), classes="section")
                with Grid(id="params"):
                    for key, (label, _) in PARAMS.items():
                        yield Static(Text(label), classes="param-label")
                        yield Input(id=f"param-{key}", type="number" if key == "timeout_s"
                                    else "integer", compact=True)
                yield Static(Text(""), id="estimate")
                yield Button("Run (ctrl+r)", id="run-button", variant="primary", compact=True)
        yield Footer()

    @staticmethod
    def _workload_label(info) -> Text:  # type: ignore[no-untyped-def]
        return Text(info.title)

    @staticmethod
    def _layer_label(name: str) -> Text:
        layer = LAYERS[name]
        return Text(f"{layer.name} {layer.title}")

    def on_mount(self) -> None:
        self.query_one("#workloads", OptionList).highlighted = 0
        self._load_workload(self.workload)
        # After the first paint: importing NVML in the worker would hold the GIL meanwhile.
        self.call_after_refresh(self.probe_devices)

    # ---- workload / preset ---------------------------------------------------------------
    def _load_workload(self, name: str) -> None:
        info = self.workloads[name]
        self.workload = name
        self.query_one("#workload-description", Static).update(Text(info.description))
        preset = self.query_one("#preset", Select)
        preset.set_options([(p, p) for p in info.presets])
        preset.value = info.default_preset if info.default_preset in info.presets else \
            next(iter(info.presets))
        self._fill_params(str(preset.value))
        self._refresh_layers()

    def _fill_params(self, preset_name: str) -> None:
        values = get_preset(self.workload, preset_name)
        defaults = RunSpec(profiler=self._profiler())  # the profiler's repeats (one place)
        for key, (_, where) in PARAMS.items():
            value = values.get(key) if where == "param" else getattr(defaults, key)
            field = self.query_one(f"#param-{key}", Input)
            # A preset without the parameter (a micro-benchmark has no new tokens) leaves the
            # field empty and disabled: it is not sent.
            field.disabled = value is None
            field.placeholder = "n/a" if value is None else ""
            field.value = "" if value is None else f"{value:g}" \
                if isinstance(value, float) else str(value)
        self._update_estimate()

    @on(OptionList.OptionHighlighted, "#workloads")
    def _workload_chosen(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.workload:
            self._load_workload(event.option.id)

    @on(Select.Changed, "#preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._fill_params(event.value)

    @on(Select.Changed, "#profiler")
    def _profiler_chosen(self) -> None:
        """Repeats follow the profiler's default (1 under ncu / nsys) until typed over."""
        field = self.query_one("#param-repeat", Input)
        if field.value.strip() in {str(t.default_repeat) for t in PROFILER_TRAITS.values()}:
            field.value = str(RunSpec(profiler=self._profiler()).repeat)

    def _profiler(self) -> str:
        value = self.query_one("#profiler", Select).value
        return value if isinstance(value, str) else "timer"

    @on(Input.Changed)
    def _param_changed(self) -> None:
        self._update_estimate()

    # ---- device probe (NVML in a thread: it can take a second) ---------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="probe")
    def probe_devices(self) -> None:
        try:
            probe = self.services.probe()
        except Exception as exc:
            probe = DeviceProbe(reason=f"probe failed: {exc}")
        self.post_message(self.ProbeDone(probe))

    def on_run_setup_screen_probe_done(self, message: ProbeDone) -> None:
        self.probe = message.probe
        probe = message.probe
        if probe.cuda:
            cc = f"cc {probe.cc[0]}.{probe.cc[1]}" if probe.cc else "cc n/a"
            line = f"GPU: {probe.name} ({cc}, {fmt_bytes(probe.memory_bytes)})"
            if probe.gpu_count > 1:
                line += f" ×{probe.gpu_count}"
        else:
            line = f"No CUDA GPU ({probe.reason}); runs go to the CPU"
        self.query_one("#device", Static).update(Text(line))
        self._refresh_layers()
        self._update_estimate()

    def _refresh_layers(self) -> None:
        """Disable (with the reason) layers the device cannot run or the workload does not take."""
        for layer in LAYERS.values():
            blocker = None
            if layer.applies_to and self.workload not in layer.applies_to:
                blocker = f"applies to {', '.join(layer.applies_to)} only"
            elif self.probe is not None:
                blocker = layer_blocker(layer.requires, self.probe)
            box = self.query_one(f"#layer-{layer.name}", Checkbox)
            reason = self.query_one(f"#reason-{layer.name}", Static)
            reason.update(Text(f"  ✗ {blocker}" if blocker else ""))
            reason.display = blocker is not None
            if layer.level > 0:
                box.disabled = blocker is not None
                if blocker:
                    box.value = False

    # ---- spec ----------------------------------------------------------------------------
    def build_spec(self) -> RunSpec:
        """The spec the form describes, through the API's ``build_spec`` (the CLI's defaults:
        warm-up is the profiler's)."""
        preset = str(self.query_one("#preset", Select).value)
        preset_values = get_preset(self.workload, preset)
        fields: dict[str, Any] = {"params": {}}
        for key, (label, where) in PARAMS.items():
            field = self.query_one(f"#param-{key}", Input)
            raw = field.value.strip()
            if field.disabled and not raw:
                continue
            try:
                value = float(raw) if key == "timeout_s" else int(raw)
            except ValueError:
                raise WorkbenchError(f"{label} must be a number, got {raw!r}") from None
            if value <= 0:
                raise WorkbenchError(f"{label} must be > 0, got {raw}")
            if where == "param":
                if value != preset_values.get(key):  # an override, as `run --batch` is
                    fields["params"][key] = value
            else:
                fields[key] = value
        layers = [name for name in LAYERS if self.query_one(f"#layer-{name}", Checkbox).value]
        spec = self.services.build_spec(workload=self.workload, preset=preset, layers=layers,
                                        profiler=self._profiler(), **fields)
        return spec.validate()

    def _update_estimate(self) -> None:
        target = self.query_one("#estimate", Static)
        try:
            spec = self.build_spec()
        except WorkbenchError as exc:
            target.update(Text(f"✗ {exc.one_line()}"))
            return
        estimate = self.services.estimate(spec)
        if estimate is None:
            target.update(Text("memory estimate: n/a"))
            return
        text = Text(f"≈ {fmt_bytes(estimate.total_bytes)} GPU memory (estimate)", style="bold")
        text.append(f"\nweights {fmt_bytes(estimate.weights_bytes)} · KV "
                    f"{fmt_bytes(estimate.kv_cache_bytes)} · act "
                    f"{fmt_bytes(estimate.activations_bytes)}")
        if self.probe and self.probe.memory_bytes and estimate.total_bytes > \
                0.9 * self.probe.memory_bytes:
            text.append(f"\n⚠ above 90% of {fmt_bytes(self.probe.memory_bytes)} on the GPU",
                        style="bold")
        target.update(text)

    def action_estimate(self) -> None:
        self._update_estimate()

    @on(Button.Pressed, "#run-button")
    def action_run(self) -> None:
        try:
            spec = self.build_spec()
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot run", severity="error")
            return
        self.post_message(RunRequested(spec))
