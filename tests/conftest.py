from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real H100 artifacts, copied into the repository so that a bare clone passes.
FIXTURES = Path(os.environ.get("AIPERF_FIXTURES", ROOT / "tests" / "data" / "h100"))


@pytest.fixture(scope="session")
def h100_fixtures() -> Path:
    """Real artifacts captured on an H100 (tests/data/h100; AIPERF_FIXTURES overrides)."""
    assert FIXTURES.is_dir(), f"fixtures not found at {FIXTURES} (set AIPERF_FIXTURES)"
    return FIXTURES


H200_DATA = ROOT / "tests" / "data" / "h200"
H200_RUNS = {"L0": "20261201-025931-8662cd", "L0-L4": "20261201-030402-d166c4",
             "best": "20261201-030001-be9dc0", "fp8": "20261201-030148-ef767c"}


@pytest.fixture(scope="session")
def h200_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session home holding the real H200 torch-profiler runs of tests/data/h200 (dense
    llama-3.1-8b: L0, L0-L4, the best bf16 stack, FP8) and the H200's calibrated ceilings."""
    import json
    import shutil

    from sessions.records import RunRecord
    from sessions.store import SessionStore

    home = tmp_path_factory.mktemp("h200-home")
    store = SessionStore(home)
    for run_id in H200_RUNS.values():
        shutil.copytree(H200_DATA / "runs" / run_id, store.run_dir(run_id))
        store.save(RunRecord.from_dict(json.loads(
            (store.run_dir(run_id) / "record.json").read_text())))
    shutil.copy2(H200_DATA / "ceilings.json", home / "ceilings.json")
    return home


def _has_cuda_device() -> bool:
    # Cheap and torch-free: the driver's device nodes exist only where a GPU is attached.
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not HAS_TORCH:
        no_torch = pytest.mark.skip(reason="needs torch (starts a workload child)")
        for item in items:
            if "torch" in item.keywords:
                item.add_marker(no_torch)
    if _has_cuda_device():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with -m gpu on a GPU node)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny shapes gain nothing from threads; on a busy 2-core box extra ones cost 10x.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Without torch (the other-Pythons step of .ci/run: torch's CPU wheel exists here only for
# 3.11), collect only the torch-free tests: parsers, analyzers, the store, the CLI's torch-free
# commands and the app. A test needs torch if it imports it, pins its threads, or starts a
# workload child (every integration test, and CLI runs of a workload or a --target).
HAS_TORCH = importlib.util.find_spec("torch") is not None
_NEEDS_TORCH = re.compile(r"^\s*(import torch|from torch)|one_torch_thread|--workload|--target|"
                          r"workloads\.run|import_module\(\"torch", re.M)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if HAS_TORCH or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if "integration" in collection_path.parts:
        return True
    try:
        text = collection_path.read_text(errors="replace")
    except OSError:
        return None
    return True if _NEEDS_TORCH.search(text) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Without torch, a test module that reaches torch through an import the pattern above
    cannot see (e.g. ``workloads.layers``) is reported skipped with the reason, not as a
    collection error that stops the run. Any other import error still fails."""
    outcome = yield
    report = outcome.get_result()
    if HAS_TORCH or not report.failed or not isinstance(collector, pytest.Module):
        return
    if "No module named 'torch'" in str(report.longrepr):
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), None,
                           "Skipped: needs torch (imports it through another module)")
