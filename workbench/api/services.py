"""The API as the app holds it: one object whose methods are the ``workbench.api`` functions
the CLI calls too, with the views the screens draw. ``make_app(..., services=...)`` takes one;
tests pass fakes for the heavy doors (run, analysis, diff, probe) with the same signatures.

Every method may block: screens call them from thread workers only. Nothing heavy is imported
here (pandas, the parsers come with the first analysis): the app's first paint stays fast and
never pulls in torch (the workloads run in a child process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profilers.base import Capability
from sessions.records import RunRecord, SessionRow
from sessions.store import SessionStore
from workbench.api import runs
from workbench.api.device import DeviceProbe, MemoryEstimate, estimate_memory, probe_devices
from workbench.api.views import AnalysisView, DiffView, to_analysis_view, to_diff_view
from workloads.spec import RunSpec

EventSink = Callable[[dict[str, Any]], None]


def _analyze(store: SessionStore, record: RunRecord) -> Any:
    from workbench.api.analysis import analyze_session

    return analyze_session(store, record)


def _diff(store: SessionStore, baseline: RunRecord, candidate: RunRecord) -> Any:
    """The CLI's diff: the same sides, per-step kernel deltas and comparability, so Compare
    shows what `aiperf-workbench diff A B` prints."""
    from workbench.api.diff import diff_sessions

    return diff_sessions(store, baseline, candidate)


class Services:
    """The API's front doors for the app; pass fakes with the same signatures in tests."""

    def __init__(
        self,
        run: Callable[..., RunRecord] | None = None,
        load_run_analysis: Callable[[SessionStore, RunRecord], Any] | None = None,
        diff_runs: Callable[..., Any] | None = None,
        probe: Callable[[], DeviceProbe] | None = None,
        estimate: Callable[[RunSpec], MemoryEstimate | None] | None = None,
    ) -> None:
        self._run = run or runs.run
        self._load_run_analysis = load_run_analysis or _analyze
        self._diff_runs = diff_runs or _diff
        self._probe = probe or probe_devices
        self._estimate = estimate or estimate_memory

    # ---- runs -------------------------------------------------------------------------------
    def build_spec(self, **fields: Any) -> RunSpec:
        """``workbench.api.runs.build_spec``: the defaults both faces use."""
        return runs.build_spec(**fields)

    def check_spec(self, spec: RunSpec, probe: DeviceProbe | None = None) -> RunSpec:
        """Everything checkable before a child starts (WorkbenchError when bad)."""
        return runs.check_spec(spec, probe)

    def run(self, spec: RunSpec, store: SessionStore, on_event: EventSink | None,
            cancel: threading.Event | None) -> RunRecord:
        """``workbench.api.runs.run``: checks the spec, then blocks until the child ends;
        events arrive on this thread."""
        return self._run(spec, store, on_event=on_event, cancel=cancel)

    def rerun_spec(self, record: RunRecord) -> RunSpec:
        return runs.rerun_spec(record)

    # ---- this machine -----------------------------------------------------------------------
    def probe(self) -> DeviceProbe:
        return self._probe()

    def profilers(self) -> dict[str, Capability]:
        from workbench.api.device import profiler_capabilities

        return profiler_capabilities()

    def estimate(self, spec: RunSpec) -> MemoryEstimate | None:
        try:
            return self._estimate(spec)
        except Exception:  # an estimate is a hint; never block the setup screen on it
            return None

    # ---- sessions ---------------------------------------------------------------------------
    def list_sessions(self, store: SessionStore, **filters: Any) -> list[SessionRow]:
        from workbench.api.sessions import list_sessions

        return list_sessions(store, **filters)

    def default_baseline(self, store: SessionStore, record: RunRecord) -> str | None:
        from workbench.api.sessions import default_baseline

        return default_baseline(store, record)

    # ---- analysis, diff, export -------------------------------------------------------------
    def load_analysis(self, store: SessionStore, record: RunRecord) -> AnalysisView:
        return to_analysis_view(self._load_run_analysis(store, record))

    def diff(self, store: SessionStore, baseline: RunRecord, candidate: RunRecord) -> DiffView:
        from workbench.api.diff import DiffResult

        result = self._diff_runs(store, baseline, candidate)
        if not isinstance(result, DiffResult):  # a bare RunDiff (a test's fake core)
            result = DiffResult(baseline.id, candidate.id, result)
        view = to_diff_view(result.diff)
        view.raw = result
        return view

    def export_session(self, record: RunRecord, analysis: AnalysisView, path: Path) -> Path:
        """``workbench.api.export.export_session``: the file `report --export` writes."""
        from workbench.api.export import export_session

        return export_session(record, analysis.raw, path)

    def export_diff(self, diff: DiffView, path: Path) -> Path:
        """``workbench.api.export.export_diff``: the file `diff A B --export` writes."""
        from workbench.api.export import export_diff

        return export_diff(diff.raw, path)

    # ---- advice -----------------------------------------------------------------------------
    def llm_unavailable(self) -> str | None:
        """Why Ask Claude cannot send now (no key), checked before the request is shown."""
        from workbench.api.advise import llm_unavailable

        return llm_unavailable()

    def llm_request(self, record: RunRecord, analysis: AnalysisView) -> dict[str, Any]:
        """The exact Messages API request `advise --llm` would send (shown before sending)."""
        from workbench.api.advise import llm_request

        return llm_request(record, analysis.raw)

    def llm_request_text(self, request: dict[str, Any]) -> str:
        from workbench.api.advise import request_text

        return request_text(request)

    def llm_advice(self, store: SessionStore, record: RunRecord, analysis: AnalysisView,
                   request: dict[str, Any], on_text: Callable[[str], None]
                   ) -> tuple[Any, str | None]:
        """Send, stream chunks to on_text (worker thread), store the answer with the session.
        Returns (answer or None, one-line failure or None); the key is never stored."""
        from workbench.api.advise import ask_llm

        return ask_llm(store, record, request, on_text=on_text)


def default_services() -> Services:
    """The real front doors."""
    return Services()
