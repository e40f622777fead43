from __future__ import annotations

from pathlib import Path

import pytest

from workbench.services import DeviceProbe, layer_blocker, normalize_ceilings, unmet_requirement
from workbench.settings import Settings, load_settings
from workloads.errors import WorkbenchError


def test_settings_file_then_env(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('theme = "nord"\ndefault_profiler = "torch"\nrefresh_hz = 2\n'
                      'home = "~/perf"\n')
    settings = load_settings(config, env={})
    assert settings == Settings(theme="nord", default_profiler="torch", refresh_hz=2.0,
                                home=Path("~/perf").expanduser())
    settings = load_settings(config, env={"AIPERF_PROFILER": "ncu", "AIPERF_REFRESH_HZ": "8",
                                          "AIPERF_HOME": str(tmp_path)})
    assert (settings.default_profiler, settings.refresh_hz, settings.home) == \
        ("ncu", 8.0, tmp_path)
    assert load_settings(tmp_path / "absent.toml", env={}) == Settings()


@pytest.mark.parametrize("text, env", [
    ('default_profiler = "gdb"\n', {}),
    ('colour = "red"\n', {}),
    ("not toml [", {}),
    ("", {"AIPERF_REFRESH_HZ": "fast"}),
])
def test_bad_settings_are_workbench_errors(tmp_path: Path, text: str, env: dict) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(WorkbenchError):
        load_settings(config, env=env)


def test_requirements_without_torch() -> None:
    none = DeviceProbe(reason="no NVIDIA driver")
    a100 = DeviceProbe(cuda=True, gpu_count=1, name="A100", cc=(8, 0))
    h100x2 = DeviceProbe(cuda=True, gpu_count=2, name="H100", cc=(9, 0))
    assert "no NVIDIA driver" in (unmet_requirement("cuda", none) or "")
    assert unmet_requirement("cc>=8.9", a100) == "needs cc>=8.9; A100 is cc 8.0"
    assert unmet_requirement("cc>=8.9", h100x2) is None
    assert unmet_requirement("multi_gpu", a100) == "needs 2+ GPUs; found 1"
    assert layer_blocker(("cuda", "multi_gpu"), h100x2) is None


def test_ceilings_become_roofs() -> None:
    class Ceilings:
        peak_flops = {"bf16": 989e12, "fp8": None}
        dram_bw = 3.35e12
        sm_count = 132

    roofs = normalize_ceilings(Ceilings())
    assert [(r.name, r.kind) for r in roofs] == [("bf16", "compute"), ("DRAM", "memory")]
    assert normalize_ceilings(None) == []
