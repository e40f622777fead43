"""Run setup: workload and preset, layers (unmet requirements disabled, with the reason),
profiler (tools not installed marked, with the reason), parameters, and the memory estimate;
the spec is checked by the API (``check_spec``) as it is typed, so the Run button never starts
a child the run would refuse. The Run bar stays on screen at any size."""

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

from profilers.base import Capability
from workbench.api.device import DeviceProbe, layer_blocker
from workbench.api.services import Services
from workbench.export.fmt import fmt_bytes
from workbench.tui.screens.messages import RunRequested
from workbench.tui.widgets.layer_checkbox import LayerCheckbox
from workbench.tui.widgets.run_form import (
    PARAMS,
    TEXT_FIELDS,
    field_text,
    profiler_options_text,
    read_fields,
)
from workloads.catalog import LAYERS, get_preset, list_workloads
from workloads.errors import WorkbenchError
from workloads.spec import DEVICES, PROFILERS, RunSpec


class RunSetupScreen(Screen):
    CSS_PATH = "setup.tcss"
    BINDINGS = [
        Binding("ctrl+r,f5", "run", "Run", id="setup.run"),
        Binding("ctrl+e", "estimate", "Estimate", id="setup.estimate", show=False),
    ]

    class ProbeDone(Message):
        def __init__(self, probe: DeviceProbe, profilers: dict[str, Capability]) -> None:
            super().__init__()
            self.probe, self.profilers = probe, profilers

    def __init__(self, services: Services, default_profiler: str = "timer",
                 prefill: RunSpec | None = None) -> None:
        super().__init__()
        self.services = services
        self.default_profiler = prefill.profiler if prefill else default_profiler
        self.prefill = prefill  # "re-run this configuration": the form starts from a spec
        self.workloads = {w.name: w for w in list_workloads()}
        self.workload = prefill.workload if prefill and prefill.workload in self.workloads \
            else next(iter(self.workloads))
        self.probe: DeviceProbe | None = None
        self.profiler_blockers: dict[str, str] = {}  # profiler -> why it cannot run here
        self._profiler_shown = self.default_profiler
        self.problem: str | None = None  # what check_spec says is wrong with the form
        self._check_pending = False
        self._probe_started = False  # the first paint is done once the probe starts
        self._filled: tuple[str, str] | None = None  # (workload, preset) the fields show
        self._prefill_params: dict[str, Any] = dict(prefill.params) if prefill else {}

    # ---- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-left", can_focus=False):
                yield Static(Text("Workload", style="bold"), classes="section")
                yield OptionList(*[Option(Text(w.title), id=w.name)
                                   for w in self.workloads.values()], id="workloads")
                yield Static(Text(""), id="workload-description")
                yield Static(Text("Preset", style="bold"), classes="section")
                info = self.workloads[self.workload]
                yield Select([(p, p) for p in info.presets], id="preset", allow_blank=False,
                             value=info.default_preset, compact=True)
                yield Static(Text("Profiler", style="bold"), classes="section")
                yield Select(self._profiler_options(), id="profiler", allow_blank=False,
                             value=self.default_profiler, compact=True)
                yield Static(Text(""), id="profiler-reason")
                yield Static(Text("Parameters", style="bold"), classes="section")
                with Grid(id="params"):
                    for key, (label, _, kind) in PARAMS.items():
                        yield Static(Text(label), classes="param-label")
                        yield Input(id=f"param-{key}", type=kind, compact=True)
                    # device, label, profiler options: mounted after the first paint (below
                    # the fold at 80x24; a dozen widgets less to style before it)
            with VerticalScroll(id="setup-right", can_focus=False):
                yield Static(Text("Layers", style="bold"), classes="section")
                yield Static(Text("probing GPU…"), id="device-line")
                for layer in LAYERS.values():
                    yield LayerCheckbox(Text(f"{layer.name} {layer.title}"),
                                        value=layer.level == 0, id=f"layer-{layer.name}",
                                        compact=True, disabled=layer.level == 0)
                    yield Static(Text(""), id=f"reason-{layer.name}", classes="layer-reason")
                yield Static(Text(""), id="estimate")
        with Horizontal(id="run-bar"):
            yield Button("Run (ctrl+r)", id="run-button", variant="primary", compact=True)
            yield Static(Text(""), id="run-check")
            yield Static(Text("↓ more fields: Tab"), id="scroll-hint")
        yield Footer()

    def _profiler_options(self) -> list[tuple[Text, str]]:
        options = []
        for name in PROFILERS:
            label = Text(name)
            if name in self.profiler_blockers:
                label = Text(f"{name} ✗ not available", style="dim")
            options.append((label, name))
        return options

    def on_mount(self) -> None:
        workloads = self.query_one("#workloads", OptionList)
        workloads.highlighted = list(self.workloads).index(self.workload)
        self._load_workload(self.workload, self.prefill.preset if self.prefill else None)
        self._fill_run_fields(self.prefill)
        workloads.focus(scroll_visible=False)  # the arrow keys work at once
        # Highlighting the list scrolls its column; the form starts at its top.
        self.call_after_refresh(self.query_one("#setup-left").scroll_home, animate=False)
        for column in self.query("#setup-left, #setup-right"):
            self.watch(column, "scroll_y", self._show_scroll_hint, init=False)
            self.watch(column, "virtual_size", self._show_scroll_hint, init=False)
        # After the first paint: importing NVML in the worker would hold the GIL meanwhile.
        # Twice: callbacks queued by on_mount would otherwise run before those queued once the
        # screen is up (the first paint is drawn already, but a caller waiting for it waits
        # for them too).
        self.call_after_refresh(self.call_after_refresh, self._start_probe)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_scroll_hint)

    def _show_scroll_hint(self) -> None:
        """A column with fields below the fold (Parameters at 80x24) says so in the Run bar."""
        hidden = any(column.max_scroll_y > column.scroll_y + 0.5
                     for column in self.query("#setup-left, #setup-right"))
        self.query_one("#scroll-hint").display = hidden

    # ---- workload / preset ---------------------------------------------------------------
    def _load_workload(self, name: str, preset_name: str | None = None) -> None:
        info = self.workloads[name]
        self.workload = name
        self.query_one("#workload-description", Static).update(Text(info.description))
        preset = self.query_one("#preset", Select)
        preset.set_options([(p, p) for p in info.presets])
        if preset_name not in info.presets:
            preset_name = info.default_preset if info.default_preset in info.presets else \
                next(iter(info.presets))
        preset.value = preset_name
        self._fill_params(str(preset_name))
        self._refresh_layers()

    def _fill_params(self, preset_name: str) -> None:
        """The preset's workload parameters; the run's own fields (repeats, warm-up, timeout)
        are the user's and stay as typed."""
        self._filled = (self.workload, preset_name)
        values = {**get_preset(self.workload, preset_name), **self._prefill_params}
        self._prefill_params = {}  # a re-run's overrides fill the form once, not every preset
        for key, (_, where, _) in PARAMS.items():
            if where != "param":
                continue
            value = values.get(key)
            field = self.query_one(f"#param-{key}", Input)
            # A preset without the parameter (a micro-benchmark has no new tokens) leaves the
            # field empty and disabled: it is not sent.
            field.disabled = value is None
            field.placeholder = "n/a" if value is None else ""
            field.value = field_text(value)
        self._request_check()

    def _fill_run_fields(self, spec: RunSpec | None) -> None:
        """Repeats, warm-up, timeout, device, label, profiler options: the profiler's
        defaults, or a stored spec's values (re-run)."""
        spec = spec or RunSpec(profiler=self._profiler())
        for key, (_, where, _) in PARAMS.items():
            if where == "spec":
                self.query_one(f"#param-{key}", Input).value = field_text(getattr(spec, key))
        if self.prefill is not None:
            for name in LAYERS:
                box = self.query_one(f"#layer-{name}", Checkbox)
                box.value = name in spec.layers
        self._request_check()

    @on(OptionList.OptionHighlighted, "#workloads")
    def _workload_chosen(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.workload:
            self._load_workload(event.option.id)

    @on(Select.Changed, "#preset")
    def _preset_chosen(self, event: Select.Changed) -> None:
        # Setting the list of presets posts a change too: the form is filled already.
        if isinstance(event.value, str) and (self.workload, event.value) != self._filled:
            self._fill_params(event.value)

    @on(Select.Changed, "#profiler")
    def _profiler_chosen(self, event: Select.Changed) -> None:
        """A profiler that cannot run here is refused with its reason; repeats and warm-up
        follow the profiler's defaults (1 and 1 under ncu / nsys) until typed over."""
        name = self._profiler()
        reason = self.profiler_blockers.get(name)
        reason_line = self.query_one("#profiler-reason", Static)
        reason_line.update(Text(f"✗ {reason}" if reason else "", style="italic"))
        reason_line.display = reason is not None
        previous = RunSpec(profiler=self._profiler_shown)
        self._profiler_shown = name
        defaults = RunSpec(profiler=name)
        for key in ("repeat", "warmup"):
            field = self.query_one(f"#param-{key}", Input)
            if field.value.strip() == str(getattr(previous, key)):
                field.value = str(getattr(defaults, key))
        self._request_check()

    def _profiler(self) -> str:
        value = self.query_one("#profiler", Select).value
        return value if isinstance(value, str) else "timer"

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(Select.Changed, "#device")
    def _form_changed(self) -> None:
        self._request_check()

    # ---- device probe (NVML in a thread: it can take a second) ---------------------------
    async def _start_probe(self) -> None:
        await self._mount_more_fields()
        self._probe_started = True
        self.probe_devices()

    async def _mount_more_fields(self) -> None:
        spec = self.prefill or RunSpec(profiler=self._profiler())
        widgets = [Static(Text("device"), classes="param-label"),
                   Select([(d, d) for d in DEVICES], id="device", allow_blank=False,
                          value=spec.device, compact=True)]
        values = {"label": spec.label,
                  "profiler_options": profiler_options_text(spec.profiler_options)}
        for key, (label, placeholder) in TEXT_FIELDS.items():
            widgets += [Static(Text(label), classes="param-label"),
                        Input(values[key], id=f"text-{key}", placeholder=placeholder,
                              compact=True)]
        await self.query_one("#params", Grid).mount_all(widgets)

    @work(thread=True, exclusive=True, exit_on_error=False, group="probe")
    def probe_devices(self) -> None:
        try:
            probe = self.services.probe()
        except Exception as exc:
            probe = DeviceProbe(reason=f"probe failed: {exc}")
        try:
            profilers = self.services.profilers()
        except Exception:  # the check happens again at Run (check_spec)
            profilers = {}
        self.post_message(self.ProbeDone(probe, profilers))

    def on_run_setup_screen_probe_done(self, message: ProbeDone) -> None:
        self.probe = probe = message.probe
        self.profiler_blockers = {name: cap.reason or "not available here"
                                  for name, cap in message.profilers.items()
                                  if not cap.available}
        if self.profiler_blockers:
            select = self.query_one("#profiler", Select)
            with self.prevent(Select.Changed):
                current = select.value
                select.set_options(self._profiler_options())
                select.value = current
            self._profiler_chosen(Select.Changed(select, current))
        if probe.cuda:
            cc = f"cc {probe.cc[0]}.{probe.cc[1]}" if probe.cc else "cc n/a"
            line = f"GPU: {probe.name} ({cc}, {fmt_bytes(probe.memory_bytes)})"
            if probe.gpu_count > 1:
                line += f" ×{probe.gpu_count}"
        else:
            line = f"No CUDA GPU ({probe.reason}); runs go to the CPU"
        self.query_one("#device-line", Static).update(Text(line))
        self._refresh_layers()
        self._request_check()

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
        """The spec the form describes, through the API's ``build_spec`` (the CLI's defaults)
        and checked by its ``check_spec`` once the device is probed (shapes the model cannot
        take, layers this machine cannot run, a profiler that is not installed)."""
        preset = str(self.query_one("#preset", Select).value)
        spec_defaults = self.prefill or RunSpec()
        fields = read_fields(self, get_preset(self.workload, preset), spec_defaults)
        layers = [name for name in LAYERS if self.query_one(f"#layer-{name}", Checkbox).value]
        devices = self.query("#device").results(Select)
        device = next((d.value for d in devices), spec_defaults.device)
        spec = self.services.build_spec(
            workload=self.workload, preset=preset, layers=layers, profiler=self._profiler(),
            device=device if isinstance(device, str) else "auto", **fields).validate()
        reason = self.profiler_blockers.get(spec.profiler)
        if reason:  # known already: no need to wait for the probe
            raise WorkbenchError(reason)
        if self.probe is not None:
            self.services.check_spec(spec, self.probe)
        return spec

    def _request_check(self) -> None:
        """One check after the pending changes are drawn (filling the form changes a dozen
        fields; each would check the whole spec, and the first paint would wait for them)."""
        if not self._check_pending:
            self._check_pending = True
            if self._probe_started:
                self.call_after_refresh(self._check_form)
            else:  # the form's first fill: checked after the first paint, not before it
                self.call_after_refresh(self.call_after_refresh, self._check_form)

    def _check_form(self) -> None:
        """The API's verdict on the form, in the Run bar, and the memory estimate."""
        self._check_pending = False
        target = self.query_one("#estimate", Static)
        check = self.query_one("#run-check", Static)
        try:
            spec = self.build_spec()
        except WorkbenchError as exc:
            self.problem = exc.one_line()
            check.update(Text(f"✗ {self.problem}", style="bold"))
            target.update(Text(""))
            return
        self.problem = None
        check.update(Text(f"{spec.workload}/{spec.preset} · {','.join(spec.layers)} · "
                          f"{spec.profiler} · {spec.repeat}×", style="dim"))
        estimate = self.services.estimate(spec)
        if estimate is None:
            target.update(Text("memory estimate: n/a"))
            return
        gpu = self.probe is not None and self.probe.cuda
        text = Text(f"≈ {fmt_bytes(estimate.total_bytes)} "
                    + ("GPU memory (estimate)" if gpu else "memory on a GPU (an estimate; "
                       "this machine has none)"), style="bold")
        text.append(f"\nweights {fmt_bytes(estimate.weights_bytes)} · KV "
                    f"{fmt_bytes(estimate.kv_cache_bytes)} · act "
                    f"{fmt_bytes(estimate.activations_bytes)}")
        if self.probe and self.probe.memory_bytes and estimate.total_bytes > \
                0.9 * self.probe.memory_bytes:
            text.append(f"\n⚠ above 90% of {fmt_bytes(self.probe.memory_bytes)} on the GPU",
                        style="bold")
        target.update(text)

    def action_estimate(self) -> None:
        self._check_form()

    @on(Button.Pressed, "#run-button")
    def action_run(self) -> None:
        try:
            spec = self.build_spec()
            if self.probe is None:  # pressed before the probe came back: check it all now
                self.services.check_spec(spec)
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot run", severity="error")
            return
        self.post_message(RunRequested(spec))
