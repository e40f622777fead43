"""How fast the Textual app starts, opens a 100k-kernel session and scrolls it.

    python benchmarks/tui_startup.py [--repeats 7] [--rows 100000] [--machine cpu2]

Figures (targets from issue 10, on the CPU box):
  cold_start_first_paint_s     a new process -> the run setup screen painted (headless
                               driver; the child reports the time of the first refresh) <= 0.5
  cold_start_tmux_s            the installed command in a new 80x24 tmux session (server already
                               up) -> the setup screen visible in capture-pane (polled every
                               5 ms, each poll a tmux client process; needs tmux)
  kernels_tab_paint_s          analysis in hand (100k kernels) -> the Kernels tab's rows
                               painted (the app's share of opening a session)  <= 0.1
  open_session_kernels_paint_s the Open key -> Kernels tab painted, including the real
                               analyzers (analyze_tables) over the 100k-row table in a worker
  page_down_ms                 one page-down in the 100k-row table: the key event posted ->
                               the table's rows repainted
The kernel table is synthetic (the H100 fixture's kernel names with random durations):
this measures the app, not the trace parser (benchmarks/trace_engine.py does that).
Writes benchmarks/results/tui_startup-<machine>.json and prints a short table last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURE_NAMES = [
    "nvjet_sm90_tst_320x128_64x3_1x2_h_bz_coopB_NNT",
    "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x128_4x1x1",
    "nvjet_sm90_hsh_64x32_64x16_4x2_h_bz_splitK_bias_TNN",
    "void cublasLt::splitKreduce_kernel<32, 16, int, float, __half, float, __half>(...)",
    "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>(...)",
    "triton_poi_fused_add_mul_0", "triton_red_fused__to_copy_mean_pow_1",
    "Memset (Device)", "Memcpy DtoD (Device -> Device)", "vectorized_gather_kernel",
]


def _stats(values: list[float], unit: str) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "unit": unit}


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AIPERF_CONFIG": os.devnull + ".toml",
            "NO_COLOR": "1"}


# ---- cold start ----------------------------------------------------------------------------
def child_first_paint(home: str) -> None:
    """Runs in a fresh process: open the app headless, print time.time() at the first paint of
    the run setup screen, quit."""
    from workbench.tui.app import make_app
    from workbench.tui.screens.setup import RunSetupScreen
    from workbench.tui.settings import Settings

    app = make_app(Settings(), home)

    async def auto_pilot(pilot) -> None:  # type: ignore[no-untyped-def]
        while not (isinstance(app.screen, RunSetupScreen) and app.screen.is_mounted):
            await asyncio.sleep(0.001)
        painted = asyncio.get_running_loop().create_future()
        app.screen.call_after_refresh(lambda: painted.set_result(time.time()))
        print(f"FIRST_PAINT {await painted:.6f}", flush=True)
        app.exit()

    app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)


def cold_start_headless(repeats: int, home: Path) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.time()
        out = subprocess.run([sys.executable, __file__, "--child-first-paint", str(home)],
                             capture_output=True, text=True, env=_child_env(), timeout=60)
        line = next((x for x in out.stdout.splitlines() if x.startswith("FIRST_PAINT")), None)
        if line is None:
            raise SystemExit(f"child failed:\n{out.stdout}\n{out.stderr}")
        times.append(float(line.split()[1]) - started)
    return times


def cold_start_tmux(repeats: int, home: Path) -> list[float] | None:
    tmux = shutil.which("tmux")
    script = Path(sys.executable).parent / "aiperf-workbench"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "workbench.cli"]
    if tmux is None:
        return None
    times = []
    for i in range(repeats):
        sock = str(home / f"tmux-{i}")
        base = [tmux, "-S", sock, "-f", "/dev/null"]
        env_args = [a for k, v in (("NO_COLOR", "1"), ("AIPERF_HOME", str(home)),
                                   ("AIPERF_CONFIG", os.devnull + ".toml"),
                                   ("PYTHONPATH", str(ROOT))) for a in ("-e", f"{k}={v}")]
        # The tmux server is started beforehand: its own start-up is not the app's.
        subprocess.run([*base, "new-session", "-d", "-s", "idle", "sleep", "60"], check=True,
                       timeout=20)
        started = time.time()
        subprocess.run([*base, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24",
                        *env_args, *command], check=True, timeout=20)
        try:
            while time.time() - started < 30:
                pane = subprocess.run([*base, "capture-pane", "-p", "-t", "b"],
                                      capture_output=True, text=True, timeout=10).stdout
                if "L0 Eager baseline" in pane:
                    times.append(time.time() - started)
                    break
                time.sleep(0.005)
        finally:
            subprocess.run([*base, "kill-server"], capture_output=True, timeout=10)
    return times


# ---- the 100k-kernel session ---------------------------------------------------------------
def kernel_table(rows: int):  # type: ignore[no-untyped-def]
    import numpy as np

    from profilers.parsers.kernel_table import make_kernel_table

    rng = np.random.default_rng(0)
    index = rng.integers(0, len(FIXTURE_NAMES), rows)
    dur = rng.lognormal(9.0, 1.2, rows).astype("int64") + 700
    return make_kernel_table({
        "name": [FIXTURE_NAMES[i] for i in index], "dur_ns": dur,
        "start_ns": np.cumsum(dur + 300), "stream": np.full(rows, 7),
        "device": np.zeros(rows, dtype=int), "grid": [(132, 1, 1)] * rows,
        "block": [(384, 1, 1)] * rows, "registers": np.full(rows, 168),
    }, source="torch")


async def measure_session(home: Path, rows: int, page_downs: int) -> dict[str, list[float]]:
    from textual import events

    from analyzers.run_analysis import analyze_tables
    from sessions.records import RunStatus
    from sessions.store import SessionStore
    from workbench.api.services import Services
    from workbench.tui.app import make_app
    from workbench.tui.screens.messages import OpenRun
    from workbench.tui.screens.results import ResultsScreen
    from workbench.tui.settings import Settings
    from workbench.tui.widgets.kernel_table import KernelTableView
    from workloads.spec import RunSpec

    table = kernel_table(rows)
    store = SessionStore(home)
    record = store.new_run(RunSpec(workload="dense", preset="tiny", layers=["L0"],
                                   profiler="torch"))
    record.status = RunStatus.OK
    store.save(record)
    services = Services(load_run_analysis=lambda s, r: analyze_tables("kineto", table))

    marks: dict[str, float] = {}
    original = KernelTableView.render_line

    def render_line(self, y):  # type: ignore[no-untyped-def]
        if y > 0 and self.shown and "painted" not in marks:
            marks["painted"] = time.perf_counter()
        return original(self, y)

    original_loaded = ResultsScreen.on_results_screen_analysis_loaded

    def loaded(self, message):  # type: ignore[no-untyped-def]
        marks["loaded"] = time.perf_counter()
        return original_loaded(self, message)

    KernelTableView.render_line = render_line  # type: ignore[method-assign]
    ResultsScreen.on_results_screen_analysis_loaded = loaded  # type: ignore[method-assign]
    results: dict[str, list[float]] = {"open": [], "paint": [], "page_down": []}
    try:
        app = make_app(Settings(), home, services=services)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            for attempt in range(4):
                marks.clear()
                started = time.perf_counter()
                app.post_message(OpenRun(record.id, tab="kernels"))
                while "painted" not in marks:
                    await asyncio.sleep(0.0005)
                if attempt:  # the first open warms imports and caches
                    results["open"].append(marks["painted"] - started)
                    results["paint"].append(marks["painted"] - marks["loaded"])
                await pilot.pause()
                if attempt < 3:
                    await pilot.press("escape")
                    await pilot.pause()
            view = app.screen.query_one(KernelTableView)
            view.focus()
            await pilot.pause()
            for _ in range(page_downs):
                # Key event in -> the table's rows repainted (the render_line hook fires).
                marks.pop("painted", None)
                started = time.perf_counter()
                app.post_message(events.Key("pagedown", None))
                while "painted" not in marks:
                    await asyncio.sleep(0)
                results["page_down"].append((marks["painted"] - started) * 1e3)
                await pilot.pause()
            assert view.cursor > 0 and view.shown == rows
    finally:
        KernelTableView.render_line = original  # type: ignore[method-assign]
        ResultsScreen.on_results_screen_analysis_loaded = original_loaded  # type: ignore[method-assign]
    return results


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return sha + ("+uncommitted" if dirty else "")
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-downs", type=int, default=60)
    parser.add_argument("--machine", default=f"cpu{os.cpu_count()}")
    parser.add_argument("--child-first-paint", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_first_paint:
        child_first_paint(args.child_first_paint)
        return

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        home = Path(tmp)
        cold_start_headless(1, home)  # warm the OS file cache: "cold" is a new process
        headless = cold_start_headless(args.repeats, home)
        tmux = cold_start_tmux(args.repeats, home)
        session = asyncio.run(measure_session(home / "session", args.rows, args.page_downs))

    metrics = {
        "cold_start_first_paint_s": _stats(headless, "s"),
        "kernels_tab_paint_s": _stats(session["paint"], "s"),
        "open_session_kernels_paint_s": _stats(session["open"], "s"),
        "page_down_ms": _stats(session["page_down"], "ms"),
    }
    if tmux:
        metrics["cold_start_tmux_s"] = _stats(tmux, "s")
    targets = {"cold_start_first_paint_s": 0.5, "cold_start_tmux_s": 0.5,
               "kernels_tab_paint_s": 0.1}
    result = {
        "benchmark": "tui_startup",
        "command": f"python benchmarks/tui_startup.py --repeats {args.repeats} --rows {args.rows}",
        "device": f"CPU {os.cpu_count()} cores ({platform.machine()}), no GPU",
        "driver": None, "torch": None, "python": platform.python_version(),
        "commit": _commit(), "date": date.today().isoformat(), "clocks": None,
        "metrics": metrics,
        "reference": {"what": "targets from issue 10", **targets},
        "notes": f"{args.rows:,}-row synthetic KernelTable (H100 fixture kernel names); "
                 "headless driver for the in-process figures; tmux polled every 5 ms. "
                 "open_session_kernels_paint_s includes analyze_tables over all rows in a "
                 "worker (categories, temporal; roofline skipped above 50k kernels). "
                 f"1-min load average {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at "
                 "end (other jobs share the box: start-up figures move with it).",
    }
    out = ROOT / "benchmarks" / "results" / f"tui_startup-{args.machine}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}\n")
    print(f"{'figure':<30} {'median':>9} {'min':>9} {'max':>9} {'n':>3}  target")
    for name, stats in metrics.items():
        target = targets.get(name)
        verdict = "" if target is None else \
            f"<= {target:g} {'ok' if stats['median'] <= target else 'MISSED'}"
        print(f"{name:<30} {stats['median']:>9.4f} {stats['min']:>9.4f} {stats['max']:>9.4f} "
              f"{stats['n']:>3}  {verdict}")


if __name__ == "__main__":
    main()
