"""Live-run widgets: one progress bar per phase, and NVML sparklines (power, clocks, util)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from workbench.export.fmt import NA, fmt_bytes, fmt_float

# The child's order (workloads/run.py): parity is checked right after the reference decode,
# before warm-up; profile follows the measured steps; write comes last, also after a failure.
PHASES = ("build", "reference", "parity", "warmup", "measure", "profile", "write")
OPTIONAL = ("parity", "profile", "write")  # shown once they start
BAR_WIDTH = 24
HISTORY = 120  # telemetry samples kept for the sparklines


@dataclass
class PhaseState:
    status: str = "pending"  # pending | active | done | failed | cancelled
    i: int = 0
    n: int = 0
    message: str = ""


class PhaseProgress(Static):
    """Draws the phases as text bars; fed by ``apply(event)`` from the screen.

    The child writes its result (phase ``write``) after a failure too, so the phase that was
    running when ``write`` began is only marked done once the run ends ok; when it fails, that
    phase is the one marked failed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phases: dict[str, PhaseState] = {name: PhaseState() for name in PHASES}
        self.current: str | None = None
        self.before_write: str | None = None  # the phase running when "write" began

    def _start(self, name: str) -> PhaseState:
        if self.current and self.current != name:
            if name == "write":
                self.before_write = self.current  # done or failed: "done" will say
            elif self.phases[self.current].status == "active":
                self.phases[self.current].status = "done"
        state = self.phases.setdefault(name, PhaseState())
        self.current = name
        return state

    def apply(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "phase":
            state = self._start(str(event.get("phase", "?")))
            state.status, state.message = "active", str(event.get("message") or "")
        elif kind == "step":
            state = self._start(str(event.get("phase") or self.current or "measure"))
            state.status = "active" if state.status != "done" else state.status
            state.i, state.n = int(event.get("i") or 0), int(event.get("n") or 0)
        elif kind == "done":
            status = str(event.get("status") or "failed")
            ok = status == "ok"
            ended = "done" if ok else ("cancelled" if status == "cancelled" else "failed")
            if not ok and self.current == "write" and self.before_write:
                if self.phases[self.before_write].status == "active":
                    self.phases[self.before_write].status = ended
                self.phases["write"].status = "done"  # the failure's result is saved
            for state in self.phases.values():
                if state.status == "active":
                    state.status = ended
        self.update(self.render_phases())

    def render_phases(self) -> Text:
        text = Text()
        glyphs = {"pending": "·", "active": "▶", "done": "✓", "failed": "✗", "cancelled": "■"}
        for name, state in self.phases.items():
            if state.status == "pending" and name in OPTIONAL and name != self.current:
                continue
            text.append(f"{glyphs[state.status]} {name:<10}",
                        style="bold" if state.status in ("active", "failed") else "")
            if state.n:
                done = min(max(state.i, 0), state.n)
                filled = round(BAR_WIDTH * done / state.n)
                text.append("█" * filled + "░" * (BAR_WIDTH - filled))
                text.append(f" {done}/{state.n}")
            elif state.status == "done":
                text.append("█" * BAR_WIDTH)
            elif state.status == "active":
                text.append("▒" * BAR_WIDTH)
            else:
                text.append("░" * BAR_WIDTH)
            if state.status in ("failed", "cancelled"):
                text.append(f"  {state.status}", style="bold")
            elif state.message and state.status == "active":
                text.append("  ")
                text.append(state.message[:60], style="dim")
            text.append("\n")
        text.rstrip()
        return text

    def on_mount(self) -> None:
        self.update(self.render_phases())


class TelemetryPanel(Vertical):
    """Hidden until the first telemetry event; then sparklines with the latest values."""

    SERIES = (("power_w", "power", "W"), ("sm_mhz", "SM clock", "MHz"),
              ("mem_mhz", "mem clock", "MHz"), ("gpu_util", "util", "%"))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: dict[str, deque[float]] = {k: deque(maxlen=HISTORY) for k, *_ in self.SERIES}
        self.latest: dict = {}

    def compose(self) -> ComposeResult:
        for key, label, _ in self.SERIES:
            with Horizontal(classes="telemetry-row"):
                yield Static(Text(label), classes="telemetry-label")
                yield Sparkline([], id=f"spark-{key}", classes="telemetry-spark")
                yield Static(Text(NA), id=f"value-{key}", classes="telemetry-value")
        yield Static(Text(""), id="telemetry-extra")

    def add_sample(self, event: dict) -> None:
        self.latest = event
        for key, *_ in self.SERIES:
            value = event.get(key)
            if isinstance(value, (int, float)):
                self.history[key].append(float(value))

    def redraw(self) -> None:
        if not self.latest:
            return
        self.display = True
        for key, _, unit in self.SERIES:
            self.query_one(f"#spark-{key}", Sparkline).data = list(self.history[key])
            self.query_one(f"#value-{key}", Static).update(
                Text(f"{fmt_float(self.latest.get(key), 0)} {unit}"))
        self.query_one("#telemetry-extra", Static).update(Text(
            f"mem used {fmt_bytes(self.latest.get('mem_used_bytes'))} · "
            f"temp {fmt_float(self.latest.get('temp_c'), 0)} °C"))
