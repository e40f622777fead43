"""App settings: a TOML file under the platform config dir, overridden by AIPERF_* variables.

    # <user_config_dir>/aiperf-workbench/config.toml   (or $AIPERF_CONFIG)
    theme = "textual-dark"
    default_profiler = "timer"
    home = "~/perf-sessions"
    refresh_hz = 4.0

Environment overrides: AIPERF_THEME, AIPERF_PROFILER, AIPERF_HOME, AIPERF_REFRESH_HZ.
A bad value is a WorkbenchError naming the file or variable, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.api import toml_text
from workloads.errors import WorkbenchError
from workloads.spec import PROFILERS

APP_NAME = "aiperf-workbench"
ENV_OVERRIDES = {
    "AIPERF_THEME": "theme",
    "AIPERF_PROFILER": "default_profiler",
    "AIPERF_HOME": "home",
    "AIPERF_REFRESH_HZ": "refresh_hz",
}


@dataclass(frozen=True)
class Settings:
    theme: str = "textual-dark"
    default_profiler: str = "timer"
    home: Path | None = None  # None: the session store's default (platformdirs data dir)
    refresh_hz: float = 4.0  # live-run redraws per second (sparklines, progress)

    def validated(self, origin: str = "settings") -> Settings:
        if self.default_profiler not in PROFILERS:
            raise WorkbenchError(
                f"{origin}: unknown default_profiler {self.default_profiler!r}",
                f"choose one of: {', '.join(PROFILERS)}",
            )
        if not 0.5 <= self.refresh_hz <= 30:
            raise WorkbenchError(
                f"{origin}: refresh_hz must be between 0.5 and 30, got {self.refresh_hz}"
            )
        return self


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("AIPERF_CONFIG"):
        return Path(env["AIPERF_CONFIG"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def _coerce(key: str, value: Any, origin: str) -> Any:
    if key == "home":
        return Path(str(value)).expanduser() if value not in (None, "") else None
    if key == "refresh_hz":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise WorkbenchError(f"{origin}: refresh_hz must be a number, got {value!r}") from None
    if not isinstance(value, str):
        raise WorkbenchError(f"{origin}: {key} must be a string, got {value!r}")
    return value


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file (if present), then AIPERF_* variables."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    settings = Settings()
    if path.is_file():
        try:
            data = toml_text.loads(path.read_text())
        except (OSError, toml_text.TOMLDecodeError) as exc:
            raise WorkbenchError(f"config file {path} is unreadable: {exc}",
                                 "fix or delete it") from None
        known = set(Settings.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise WorkbenchError(f"config file {path}: unknown keys {', '.join(unknown)}",
                                 f"known keys: {', '.join(sorted(known))}")
        settings = replace(settings, **{k: _coerce(k, v, str(path)) for k, v in data.items()})
        settings.validated(str(path))
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            settings = replace(settings, **{key: _coerce(key, env[var], var)})
            settings.validated(var)
    return settings
