"""The seams of ARCHITECTURE.md, checked in fresh interpreters: the core never loads the UI
libraries, and the CLI's analyze path (the app's process too) never loads torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "h100" / "torch_trace.json"


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


CORE = [
    "workloads", "workloads.catalog", "workloads.spec", "workloads.protocol", "workloads.estimate",
    "profilers", "profilers.runner", "profilers.parsers.kineto", "profilers.parsers.detect",
    "profilers.parsers.ncu_csv", "profilers.parsers.nsys_sqlite",
    "analyzers", "analyzers.breakdown", "analyzers.run_analysis",
    "sessions", "sessions.store",
]
# The headless API (every module) and the renderers: above the core, below both faces.
API = sorted(f"{package}.{path.stem}" for package, folder in (
    ("workbench.api", ROOT / "workbench" / "api"),
    ("workbench.api.pipeline", ROOT / "workbench" / "api" / "pipeline"),
    ("workbench.export", ROOT / "workbench" / "export")) for path in folder.glob("*.py")
    if path.stem != "__init__")


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_not_load_ui_libraries(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    assert not {"textual", "rich", "workbench"} & loaded, module


def test_every_api_module_is_headless() -> None:
    """No textual, rich or torch, and neither face, in a process that imports the whole API
    (the app's services too: they must not pull in what the app's first paint avoids)."""
    assert len(API) > 20
    loaded = _modules_after("import " + ", ".join(API))
    assert not {"textual", "rich", "torch", "workbench.cli", "workbench.tui"} & loaded
    assert "pandas" not in _modules_after("import workbench.api.services")


def test_torch_free_modules_stay_torch_free() -> None:
    loaded = _modules_after("import workloads, workloads.catalog, workloads.spec, "
                            "workloads.estimate, profilers.runner, workbench.api.pipeline.analysis, workbench.cli")
    assert "torch" not in loaded


def test_cli_analyze_does_not_load_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from workbench.cli import main\n"
        f"rc = main(['--home', {str(tmp_path)!r}, 'analyze', {str(FIXTURE)!r}])\n"
        "assert rc == 0, rc\n"
    )
    loaded = _modules_after(code)
    assert "torch" not in loaded and "textual" not in loaded  # a command is not the app
    assert "pandas" in loaded  # the analysis really ran
