"""Messages the screens post up to the app, which is the only router between screens."""

from __future__ import annotations

from textual.message import Message

from workloads.spec import RunSpec


class RunRequested(Message):
    """Setup asks for a run of ``spec`` (the app opens the live screen)."""

    def __init__(self, spec: RunSpec) -> None:
        super().__init__()
        self.spec = spec


class OpenRun(Message):
    """Show a stored run's results; ``replace`` swaps out the current screen (live run)."""

    def __init__(self, run_id: str, baseline_id: str | None = None, tab: str = "summary",
                 replace: bool = False) -> None:
        super().__init__()
        self.run_id, self.baseline_id, self.tab, self.replace = run_id, baseline_id, tab, replace


class RunStored(Message):
    """A run ended and its session is stored (the app reloads the lists that show it)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class EditRun(Message):
    """Open the run form filled with ``spec`` (re-run a stored configuration)."""

    def __init__(self, spec: RunSpec) -> None:
        super().__init__()
        self.spec = spec
