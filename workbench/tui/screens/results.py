"""Results of one run, in tabs: Summary, Kernels, Roofline, Diff, Advice.

The analysis (parsing, categories, roofline) loads in a thread worker; the diff is computed
when the Diff tab is first shown (or a baseline is picked), also in a worker.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from sessions.records import RunRecord
from sessions.store import SessionStore
from workbench.api.services import Services
from workbench.api.views import AnalysisView, DiffView
from workbench.tui.screens.messages import EditRun
from workbench.tui.screens.pick_session import PickSessionScreen
from workbench.tui.widgets.diff_panel import DiffPanel
from workbench.tui.widgets.kernels_panel import KernelsPanel
from workbench.tui.widgets.roofline import RooflinePanel
from workbench.tui.widgets.summary import AdvicePanel, SummaryPanel
from workloads.errors import WorkbenchError

TABS = ("summary", "kernels", "roofline", "diff", "advice")


class ResultsScreen(Screen):
    CSS_PATH = "results.tcss"
    BINDINGS = [
        # The tab keys are on the tabs themselves ("1 Summary"): the footer keeps room for
        # the rest at 80 columns.
        Binding("1", "tab('summary')", "Summary", id="results.summary", show=False),
        Binding("2", "tab('kernels')", "Kernels", id="results.kernels", show=False),
        Binding("3", "tab('roofline')", "Roofline", id="results.roofline", show=False),
        Binding("4", "tab('diff')", "Diff", id="results.diff", show=False),
        Binding("5", "tab('advice')", "Advice", id="results.advice", show=False),
        Binding("e", "export", "Export", id="results.export"),
        Binding("b", "pick_baseline", "Baseline", id="results.baseline"),
        Binding("l", "ask_llm", "Ask Claude", id="results.llm"),
        Binding("ctrl+r", "rerun", "Re-run", id="results.rerun", show=False),
        Binding("escape", "back", "Back", id="results.back"),
    ]

    class AnalysisLoaded(Message):
        def __init__(self, analysis: AnalysisView) -> None:
            super().__init__()
            self.analysis = analysis

    class LlmText(Message):
        def __init__(self, text: str, done: bool = False, error: str | None = None) -> None:
            super().__init__()
            self.text, self.done, self.error = text, done, error

    class Exported(Message):
        def __init__(self, paths: list[Path], error: str | None = None) -> None:
            super().__init__()
            self.paths, self.error = paths, error

    class DiffLoaded(Message):
        def __init__(self, diff: DiffView | None, baseline_id: str, error: str | None) -> None:
            super().__init__()
            self.diff, self.baseline_id, self.error = diff, baseline_id, error

    def __init__(self, record: RunRecord, services: Services, store: SessionStore,
                 baseline_id: str | None = None, tab: str = "summary") -> None:
        super().__init__()
        self.record, self.services, self.store = record, services, store
        self.baseline_id = baseline_id
        self.initial_tab = tab if tab in TABS else "summary"
        self.analysis: AnalysisView | None = None
        self._diffed: str | None = None  # baseline id of the diff shown (or being computed)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial=f"tab-{self.initial_tab}", id="result-tabs"):
            with TabPane("1 Summary", id="tab-summary"):
                yield SummaryPanel(self.record, id="summary")
            with TabPane("2 Kernels", id="tab-kernels"):
                yield KernelsPanel(id="kernels")
            with TabPane("3 Roofline", id="tab-roofline"):
                yield RooflinePanel(id="roofline")
            with TabPane("4 Diff", id="tab-diff"):
                yield DiffPanel(id="diff")
            with TabPane("5 Advice", id="tab-advice"):
                yield AdvicePanel(id="advice")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.record.id} · {self.record.status}"
        self.load_analysis()
        if self.initial_tab == "diff":
            self._ensure_diff()

    # ---- analysis ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="analysis")
    def load_analysis(self) -> None:
        try:
            analysis = self.services.load_analysis(self.store, self.record)
        except Exception as exc:
            analysis = AnalysisView(error=f"{type(exc).__name__}: {exc}")
        self.post_message(self.AnalysisLoaded(analysis))

    def on_results_screen_analysis_loaded(self, message: AnalysisLoaded) -> None:
        analysis = self.analysis = message.analysis
        if analysis.error:
            self.notify(analysis.error, title="Analysis failed", severity="error")
        self.query_one(KernelsPanel).set_table(analysis.kernels, analysis.notes,
                                                analysis.cpu_ops)
        self.query_one(RooflinePanel).set_data(analysis.roofline, analysis.roofs,
                                               getattr(analysis, "budget", None))
        self.query_one(AdvicePanel).set_advice(analysis.advice, self.record.llm_advice)
        self.query_one(SummaryPanel).set_analysis(analysis)

    # ---- LLM advice (opt-in per request) --------------------------------------------------
    def action_ask_llm(self) -> None:
        if self.analysis is None or self.analysis.raw is None:
            self.notify("The analysis is still loading.", title="Ask Claude")
            return
        unavailable = self.services.llm_unavailable()
        if unavailable:  # asked first: no consent for a request that cannot go out
            self.notify(f"Cannot ask: {unavailable}.", title="Ask Claude", severity="warning")
            return
        try:
            request = self.services.llm_request(self.record, self.analysis)
        except Exception as exc:
            self.notify(f"{type(exc).__name__}: {exc}", title="Ask Claude", severity="error")
            return
        self.query_one(TabbedContent).active = "tab-advice"

        def answered(send: bool | None) -> None:
            if send:
                self.query_one(AdvicePanel).show_llm_text("(waiting for the first tokens…)")
                self.stream_llm(request)

        from workbench.tui.screens.llm_confirm import LLMConfirmScreen

        self.app.push_screen(LLMConfirmScreen(self.services.llm_request_text(request)), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="llm")
    def stream_llm(self, request: dict) -> None:
        chunks: list[str] = []

        def on_text(chunk: str) -> None:
            chunks.append(chunk)
            self.post_message(self.LlmText("".join(chunks)))

        assert self.analysis is not None
        answer, failure = self.services.llm_advice(self.store, self.record, self.analysis,
                                                   request, on_text)
        self.post_message(self.LlmText("".join(chunks), done=True, error=failure))

    def on_results_screen_llm_text(self, message: LlmText) -> None:
        panel = self.query_one(AdvicePanel)
        if message.error:
            panel.show_llm_text("")
            self.notify(message.error + " — the rule-based advice above still holds.",
                        title="Claude's advice failed", severity="warning")
            return
        panel.show_llm_text(message.text)
        if message.done:
            try:  # the answer is stored with the session; keep the record in step
                self.record = self.store.get(self.record.id)
            except Exception:
                pass

    # ---- diff ----------------------------------------------------------------------------
    def default_baseline(self) -> str | None:
        """The newest earlier ok run of the same workload and preset."""
        return self.services.default_baseline(self.store, self.record)

    def _ensure_diff(self) -> None:
        if self.baseline_id is None:
            self.baseline_id = self.default_baseline()
        if self.baseline_id is None:
            self.query_one(DiffPanel).show_pending(
                "No earlier ok run of this workload and preset to compare with. Press b to "
                "pick any session as the baseline.")
            return
        if self._diffed != self.baseline_id:
            self._diffed = self.baseline_id
            self.query_one(DiffPanel).show_pending(f"Comparing with {self.baseline_id}…")
            self.compute_diff(self.baseline_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="diff")
    def compute_diff(self, baseline_id: str) -> None:
        try:
            baseline = self.store.get(baseline_id)
            diff = self.services.diff(self.store, baseline, self.record)
        except Exception as exc:
            self.post_message(self.DiffLoaded(None, baseline_id, f"{exc}"))
            return
        self.post_message(self.DiffLoaded(diff, baseline_id, None))

    def on_results_screen_diff_loaded(self, message: DiffLoaded) -> None:
        panel = self.query_one(DiffPanel)
        if message.diff is None:
            panel.show_pending(f"Diff against {message.baseline_id} failed: {message.error}")
        else:
            panel.set_diff(message.diff, message.baseline_id, self.record.id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-diff":
            self._ensure_diff()

    # ---- keys ----------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{tab}"
        pane = self.query_one(f"#tab-{tab}", TabPane)
        focusable = [w for w in pane.query("*") if w.focusable]
        if tab == "kernels":
            focusable = [w for w in focusable if w.id in ("kernel-table", "cpu-ops")
                         and w.display] or focusable
        if focusable:
            focusable[0].focus()

    def action_pick_baseline(self) -> None:
        rows = [r for r in self.services.list_sessions(self.store) if r.id != self.record.id]
        if not rows:
            self.notify("No other sessions to compare with.", severity="warning")
            return

        def chosen(run_id: str | None) -> None:
            if run_id:
                self.baseline_id = run_id
                self.action_tab("diff")
                self._ensure_diff()

        self.app.push_screen(PickSessionScreen(rows, title=Text(
            f"Baseline for {self.record.id}")), chosen)

    # ---- re-run -------------------------------------------------------------------------
    def action_rerun(self) -> None:
        """The run form filled with this session's configuration (api.runs.rerun_spec)."""
        try:
            spec = self.services.rerun_spec(self.record)
        except WorkbenchError as exc:
            self.notify(exc.one_line(), title="Cannot re-run", severity="warning")
            return
        self.post_message(EditRun(spec))

    # ---- export (the files `report ID --export` / `diff A B --export` write) ----------------
    def action_export(self) -> None:
        """Export what is open: the diff on the Diff tab (once computed), else the session."""
        diff = self.query_one(DiffPanel).diff
        on_diff = self.query_one(TabbedContent).active == "tab-diff"
        if on_diff and diff is not None and diff.raw is not None:
            what = f"the diff {self.baseline_id} → {self.record.id}"
            default = Path.cwd() / f"diff-{self.baseline_id}-{self.record.id}.md"
        elif self.analysis is None or self.analysis.raw is None:
            self.notify("The analysis is still loading (or failed); nothing to export yet.",
                        title="Export", severity="warning")
            return
        else:
            what, default = f"session {self.record.id}", Path.cwd() / f"{self.record.id}.md"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.notify(f"Writing {path.name}…", title="Export")
                self.write_export(path, diff if on_diff else None)

        from workbench.tui.screens.export import ExportScreen

        self.app.push_screen(ExportScreen(what, default), chosen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def write_export(self, markdown: Path, diff: DiffView | None) -> None:
        paths: list[Path] = []
        try:
            for path in (markdown, markdown.with_suffix(".json")):
                if diff is not None:
                    paths.append(self.services.export_diff(diff, path))
                else:
                    assert self.analysis is not None
                    paths.append(self.services.export_session(self.record, self.analysis,
                                                              path))
        except Exception as exc:  # a full disk, a read-only folder: one line
            one_line = getattr(exc, "one_line", None)
            self.post_message(self.Exported(paths, one_line() if callable(one_line)
                                            else f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Exported(paths))

    def on_results_screen_exported(self, message: Exported) -> None:
        if message.error:
            self.notify(message.error, title="Export failed", severity="error", timeout=10)
            return
        self.notify("\n".join(str(p) for p in message.paths), title="Exported",
                    timeout=10)

    def action_back(self) -> None:
        self.dismiss()
