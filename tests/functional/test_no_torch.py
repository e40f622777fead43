"""The TUI process never imports torch: workloads run in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import asyncio, sys, tempfile
    from tests.functional.fakes import FakeCore
    from workbench.tui.app import make_app
    from workbench.api.services import Services
    from workbench.tui.settings import Settings

    async def main():
        core = FakeCore(rows=2000)
        # Real probe (NVML) and real memory estimate; the run itself is faked here, but the
        # real analysis and diff front doors are imported, as the app would.
        services = Services(run=core.run, load_run_analysis=core.load_run_analysis,
                            diff_runs=core.diff_runs)
        import workbench.api.pipeline.analysis, analyzers.diff, profilers.runner  # noqa: F401
        app = make_app(Settings(), tempfile.mkdtemp(), services=services)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("ctrl+r")
            for _ in range(300):
                await pilot.pause(0.02)
                if type(app.screen).__name__ == "ResultsScreen" and app.screen.analysis:
                    break
            assert type(app.screen).__name__ == "ResultsScreen", app.screen
            await pilot.press("2", "3", "4", "5", "f3", "f1")
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH_MODULES", bad)
        sys.exit(1 if bad else 0)

    asyncio.run(main())
""")


def test_app_process_never_imports_torch() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "TORCH_MODULES []" in result.stdout
