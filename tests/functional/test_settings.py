from __future__ import annotations

from pathlib import Path

import pytest

from workbench.api.device import DeviceProbe, layer_blocker
from workbench.api.views import normalize_ceilings
from workbench.tui.settings import Settings, load_settings
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


def test_config_file_in_the_platform_dir_reaches_the_app(tmp_path: Path, monkeypatch) -> None:
    """The file under the platform config dir (XDG on Linux) and AIPERF_* overrides, through
    the CLI's own path (load_settings with no arguments), shape the running app."""
    import asyncio

    from workbench.tui.app import make_app
    from workbench.tui.settings import config_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("AIPERF_CONFIG", "AIPERF_THEME", "AIPERF_PROFILER", "AIPERF_HOME",
                "AIPERF_REFRESH_HZ"):
        monkeypatch.delenv(var, raising=False)
    path = config_path()
    assert path == tmp_path / "xdg" / "aiperf-workbench" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f'theme = "textual-light"\ndefault_profiler = "torch"\n'
                    f'home = "{tmp_path / "from-file"}"\nrefresh_hz = 10\n')
    monkeypatch.setenv("AIPERF_PROFILER", "timer")
    settings = load_settings()
    assert (settings.theme, settings.default_profiler, settings.refresh_hz) == \
        ("textual-light", "timer", 10.0)

    async def drive() -> tuple[str, str, Path]:
        from textual.widgets import Select

        app = make_app(settings)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            return app.theme, str(app.screen.query_one("#profiler", Select).value), \
                app.store.home

    theme, profiler, home = asyncio.run(drive())
    assert (theme, profiler, home) == ("textual-light", "timer", tmp_path / "from-file")


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
    """The app's check is the child's (workloads.requirements): the same words, and an
    unknown requirement is never met (the app used to let it through)."""
    none = DeviceProbe(reason="no NVIDIA driver")
    a100 = DeviceProbe(cuda=True, gpu_count=1, name="A100", cc=(8, 0))
    h100x2 = DeviceProbe(cuda=True, gpu_count=2, name="H100", cc=(9, 0))
    assert layer_blocker(("cuda",), none) == "needs a CUDA GPU (none available)"
    assert layer_blocker(("cuda",), h100x2, device="cpu") == "needs a CUDA GPU (run is on cpu)"
    assert layer_blocker(("cc>=8.9",), a100) == \
        "needs compute capability >= 8.9, this GPU is 8.0"
    assert layer_blocker(("cc>=8.9",), h100x2) is None
    assert layer_blocker(("multi_gpu",), a100) == "needs 2 or more CUDA GPUs (1 available)"
    assert layer_blocker(("cuda", "multi_gpu"), h100x2) is None
    assert layer_blocker(("warp-drive",), h100x2) == "unknown requirement 'warp-drive'"


def test_ceilings_become_roofs() -> None:
    class Ceilings:
        peak_flops = {"bf16": 989e12, "fp8": None}
        dram_bw = 3.35e12
        sm_count = 132

    roofs = normalize_ceilings(Ceilings())
    assert [(r.name, r.kind) for r in roofs] == [("bf16", "compute"), ("DRAM", "memory")]
    assert normalize_ceilings(None) == []
