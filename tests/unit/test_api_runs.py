"""The API's run checks: bad input is one line and exit 2 before any child starts, with
nothing stored (the CLI used to start a child and store a failed session for --batch 0 or
--layers L4 on a CPU); the profiler-dependent defaults live in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from profilers.base import Capability
from sessions.store import SessionStore
from workbench.api import device as api_device
from workbench.api.device import DeviceProbe
from workbench.api.runs import build_spec, check_spec
from workbench.cli import main
from workloads.errors import WorkbenchError

NO_GPU = DeviceProbe(reason="no NVIDIA driver (test)")
H100 = DeviceProbe(cuda=True, gpu_count=1, name="NVIDIA H100", cc=(9, 0))


@pytest.fixture(autouse=True)
def no_gpu_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI probes NVML; on every machine this test sees no GPU."""
    monkeypatch.setattr(api_device, "probe_devices", lambda: NO_GPU)
    monkeypatch.setattr("workbench.api.runs.probe_devices", lambda: NO_GPU)


@pytest.mark.parametrize("args,words", [
    (["--batch", "0"], "dense param batch must be a positive integer, got 0"),
    (["--prompt-len", "512", "--new-tokens", "256"],
     "prompt_len + new_tokens (768) exceeds max_seq (64)"),
    (["--layers", "L4"], "layer L4 cannot run here: needs a CUDA GPU (none available)"),
    (["--param", "warp=9"], "unknown dense params: warp"),
    (["--param", "step_sleep_ms=-1"], "step_sleep_ms must be 0..60000 ms"),
    (["--device", "cuda"], "device 'cuda' requested but no CUDA GPU is available"),
    (["--profiler", "ncu"], "Nsight Compute (ncu) is not installed"),
    (["--workload", "moe", "--param", "batch=0"], "moe param batch must be a positive integer"),
])
def test_bad_input_is_refused_before_a_child_starts(tmp_path: Path, capsys, args: list[str],
                                                    words: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPERF_NCU", str(tmp_path / "no-ncu-here"))
    code = main(["--home", str(tmp_path / "home"), "run", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert SessionStore(tmp_path / "home").list() == []  # nothing ran, nothing stored


def test_unmet_layers_skip_lets_the_run_record_them(tmp_path: Path) -> None:
    """The ladder's way: the layer is recorded as not applied by the child, not refused."""
    spec = build_spec(layers="L0,L4", params={"unmet_layers": "skip"})
    assert check_spec(spec, NO_GPU).layers == ["L0", "L4"]


def test_a_gpu_machine_passes_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = build_spec(layers="L0-L4", device="cuda")
    assert check_spec(spec, H100).layers == ["L0", "L1", "L2", "L3", "L4"]
    with pytest.raises(WorkbenchError, match="L4 cannot run here: needs a CUDA GPU .run is on cpu"):
        check_spec(build_spec(layers="L0,L4", device="cpu"), H100)
    a100 = DeviceProbe(cuda=True, gpu_count=1, name="NVIDIA A100", cc=(8, 0))
    with pytest.raises(WorkbenchError, match="L5-fp8 cannot run here: needs compute capability "
                                             ">= 8.9, this GPU is 8.0"):
        check_spec(build_spec(layers="L0,L5-fp8"), a100)


@pytest.mark.parametrize("profiler,repeat,warmup", [("timer", 5, 2), ("ncu", 1, 1),
                                                    ("nsys", 1, 1)])
def test_profiler_defaults_come_from_one_place(profiler: str, repeat: int, warmup: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from profilers import registry

    monkeypatch.setattr(registry.ProfilerEntry, "check", lambda self: Capability(True))
    spec = check_spec(build_spec(profiler=profiler), NO_GPU)
    assert (spec.repeat, spec.warmup) == (repeat, warmup)
    given = check_spec(build_spec(profiler=profiler, repeat=3, warmup=0), NO_GPU)
    assert (given.repeat, given.warmup) == (3, 0)


def test_rerun_takes_the_stored_configuration(h200_home: Path) -> None:
    from tests.conftest import H200_RUNS
    from workbench.api.runs import rerun_spec
    from workbench.api.sessions import get_session, open_store

    record = get_session(open_store(h200_home), H200_RUNS["best"])
    again = rerun_spec(record)
    assert again == record.spec and again is not record.spec
    assert (again.preset, again.layers[-1], again.profiler) == ("llama-3.1-8b", "L5-gemv",
                                                                 "torch")
    record.spec = None  # an analysis of artifacts from elsewhere: nothing to run again
    with pytest.raises(WorkbenchError, match="no configuration to run again"):
        rerun_spec(record)
