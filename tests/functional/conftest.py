from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sessions.store import SessionStore
from tests.functional.fakes import FakeCore, write_run
from workbench.tui.app import WorkbenchApp, make_app
from workbench.tui.settings import Settings
from workloads import catalog
from workloads.catalog import LayerInfo, WorkloadInfo
from workloads.spec import RunSpec

BASELINE_ID = "20250101-120000-aaaaaa"
CANDIDATE_ID = "20250101-120500-bbbbbb"


def seed_store(home: Path, rows: int) -> Path:
    """Two finished runs with fixed ids and times (snapshots must not change run to run)."""
    store = SessionStore(home)
    write_run(store, RunSpec(layers=["L0"]), rows, BASELINE_ID, 1_735_732_800.0)
    write_run(store, RunSpec(layers=["L0", "L1"]), rows, CANDIDATE_ID, 1_735_733_100.0)
    return home


@pytest.fixture
def seeded_home(tmp_path: Path) -> Path:
    return seed_store(tmp_path, 100_000)


@pytest.fixture
def small_home(tmp_path: Path) -> Path:
    """Seeded like ``seeded_home`` with 5k kernels a run: snapshots show only the top rows."""
    return seed_store(tmp_path, 5_000)


@pytest.fixture
def app_factory() -> Callable[..., WorkbenchApp]:
    def build(home: Path, core: FakeCore | None = None, **settings: object) -> WorkbenchApp:
        core = core or FakeCore()
        return make_app(Settings(**settings), home, services=core.services())  # type: ignore[arg-type]

    return build


async def wait_until(pilot, predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            await pilot.pause()
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # async tests run through anyio's pytest plugin (no pytest-asyncio needed)


def screen_text(app: WorkbenchApp) -> str:
    """The screen as plain text lines (from the SVG screenshot), to assert on what is shown."""
    svg = app.export_screenshot()
    lines: dict[int, dict[int, str]] = {}
    pattern = (r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
               r'clip-path="url\(#[^)]*-line-(\d+)\)">(.*?)</text>')
    for match in re.finditer(pattern, svg):
        lines.setdefault(int(match.group(2)), {})[round(float(match.group(1)) / 12.2)] = \
            html.unescape(match.group(3))
    out = []
    for number in sorted(lines):
        buffer: list[str] = []
        for column, chunk in sorted(lines[number].items()):
            buffer.extend(" " * max(column - len(buffer), 0))
            buffer[column:column + len(chunk)] = list(chunk)
        out.append("".join(buffer).replace("\xa0", " ").rstrip())
    return "\n".join(out)


# The catalog the snapshots show, frozen: snapshots check the screens' layout, so workloads and
# layers added to the real catalog later must not change them.
PINNED_WORKLOADS = {
    "dense": WorkloadInfo(
        "dense", "Dense decoder (Llama-3 style)",
        "RMSNorm, RoPE, grouped-query attention, SwiGLU MLP, KV cache; random weights from a "
        "seed. Measures prefill and batch-B decode.", "workloads.dense",
        presets={"tiny": {"hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "mlp": 384,
                          "vocab": 512, "batch": 2, "prompt_len": 32, "new_tokens": 8,
                          "max_seq": 64, "dtype": "float32", "rope_theta": 500000.0,
                          "norm_eps": 1e-5},
                 "small": {"hidden": 1024, "layers": 8, "heads": 16, "kv_heads": 4,
                           "mlp": 2816, "vocab": 32000, "batch": 1, "prompt_len": 128,
                           "new_tokens": 32, "max_seq": 512, "dtype": "bfloat16",
                           "rope_theta": 500000.0, "norm_eps": 1e-5}}),
    "gemm": WorkloadInfo("gemm", "GEMM micro-benchmark", "One matmul shape, timed.",
                         "workloads.micro_gemm", presets={"tiny": {"m": 64, "n": 64, "k": 64}},
                         kind="micro"),
}
PINNED_LAYERS = {
    "L0": LayerInfo("L0", 0, "Eager baseline", "Eager PyTorch."),
    "L1": LayerInfo("L1", 1, "TF32 / precision", "TF32 matmuls."),
    "L2": LayerInfo("L2", 2, "Memory layout", "Fused projections.", applies_to=("dense",)),
    "L4": LayerInfo("L4", 4, "CUDA graphs", "Captured decode.", requires=("cuda",),
                    applies_to=("dense",)),
}


@pytest.fixture
def pinned_catalog():  # type: ignore[no-untyped-def]
    """Swap the catalog's contents (in place: screens hold the same dict objects) for the
    pinned one, and put the real one back afterwards."""
    saved = dict(catalog.WORKLOADS), dict(catalog.LAYERS)
    for live, pinned in ((catalog.WORKLOADS, PINNED_WORKLOADS), (catalog.LAYERS, PINNED_LAYERS)):
        live.clear()
        live.update(pinned)  # type: ignore[arg-type]
    yield
    for live, real in zip((catalog.WORKLOADS, catalog.LAYERS), saved, strict=True):
        live.clear()
        live.update(real)  # type: ignore[arg-type]
