"""NVML telemetry beside a run: a thread samples power, clocks, temperature, utilization,
memory and throttle reasons every ``interval_s`` (default 100 ms).

No NVML (a CPU box, no driver): ``start()`` returns a sampler whose summary is
``{"available": False, "reason": ...}`` — shown as n/a, never an error.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELDS = ("t_s", "power_w", "sm_mhz", "mem_mhz", "temp_c", "gpu_util", "mem_util",
          "mem_used_bytes", "throttle_mask")

# Throttle/"clocks event" reason bits that mean the GPU was slowed (not idle, not app clocks).
_THROTTLE_BITS = {
    0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
    0x80: "hw_power_brake", 0x100: "display_clocks",
}


@dataclass
class TelemetrySampler:
    device_index: int = 0
    interval_s: float = 0.1
    on_sample: Callable[[dict[str, Any]], None] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    device_name: str | None = None
    power_limit_w: float | None = None
    _handle: Any = None
    _nvml: Any = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _energy_start_mj: int | None = None
    _energy_end_mj: int | None = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def start(self) -> TelemetrySampler:
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except Exception as exc:  # no library, no driver, no device: telemetry is n/a
            self.reason = f"NVML unavailable: {type(exc).__name__}: {exc}".strip()
            self._handle = None
            return self
        name = self._nvml.nvmlDeviceGetName(self._handle)
        self.device_name = name.decode() if isinstance(name, bytes) else str(name)
        self.power_limit_w = self._try(lambda h: self._nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000)
        self._energy_start_mj = self._try(self._nvml.nvmlDeviceGetTotalEnergyConsumption)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2)
            self._energy_end_mj = self._try(self._nvml.nvmlDeviceGetTotalEnergyConsumption)
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._thread = None

    def _try(self, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._handle)
        except Exception:
            return None

    def sample_once(self) -> dict[str, Any]:
        n, h = self._nvml, self._handle
        power = self._try(n.nvmlDeviceGetPowerUsage)
        util = self._try(n.nvmlDeviceGetUtilizationRates)
        mem = self._try(n.nvmlDeviceGetMemoryInfo)
        reasons_fn = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
        return {
            "t_s": round(time.monotonic() - self._t0, 4),
            "power_w": power / 1000 if power is not None else None,
            "sm_mhz": self._try(lambda h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
            "mem_mhz": self._try(lambda h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
            "temp_c": self._try(lambda h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)),
            "gpu_util": util.gpu if util is not None else None,
            "mem_util": util.memory if util is not None else None,
            "mem_used_bytes": mem.used if mem is not None else None,
            "throttle_mask": self._try(reasons_fn) if h is not None else None,
        }

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = self.sample_once()
            self.samples.append(sample)
            if self.on_sample is not None:
                try:
                    self.on_sample(sample)
                except Exception:
                    pass
            self._stop.wait(self.interval_s)

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(self.samples)

    def summary(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "reason": self.reason or "NVML unavailable"}
        return summarize_samples(
            self.samples, self.interval_s, device_name=self.device_name,
            power_limit_w=self.power_limit_w,
            energy_counter_j=((self._energy_end_mj - self._energy_start_mj) / 1000
                              if self._energy_start_mj is not None and self._energy_end_mj is not None
                              else None))


def summarize_samples(samples: list[dict[str, Any]], interval_s: float, device_name: str | None = None,
                      power_limit_w: float | None = None,
                      energy_counter_j: float | None = None) -> dict[str, Any]:
    """Mean/max power, energy (J), clock range, throttling seen; None where unknown."""

    def col(key: str) -> list[float]:
        return [float(s[key]) for s in samples if s.get(key) is not None]

    power, sm, mem_clk, temp = col("power_w"), col("sm_mhz"), col("mem_mhz"), col("temp_c")
    reasons: set[str] = set()
    for s in samples:
        mask = s.get("throttle_mask")
        if mask:
            reasons |= {name for bit, name in _THROTTLE_BITS.items() if int(mask) & bit}
    duration = (samples[-1]["t_s"] - samples[0]["t_s"]) if len(samples) > 1 else None
    energy = energy_counter_j
    if energy is None and len(power) > 1 and duration:
        energy = sum(power) / len(power) * duration  # trapezoid-free estimate at a fixed rate
    return {
        "available": True,
        "device_name": device_name,
        "n_samples": len(samples),
        "interval_s": interval_s,
        "duration_s": duration,
        "power_w_mean": sum(power) / len(power) if power else None,
        "power_w_max": max(power) if power else None,
        "power_limit_w": power_limit_w,
        "energy_j": energy,
        "sm_mhz_min": min(sm) if sm else None,
        "sm_mhz_max": max(sm) if sm else None,
        "mem_mhz_min": min(mem_clk) if mem_clk else None,
        "mem_mhz_max": max(mem_clk) if mem_clk else None,
        "temp_c_max": max(temp) if temp else None,
        "gpu_util_mean": (sum(col("gpu_util")) / len(col("gpu_util"))) if col("gpu_util") else None,
        "mem_used_bytes_max": max(col("mem_used_bytes")) if col("mem_used_bytes") else None,
        "throttle_reasons": sorted(reasons),
        "throttle_seen": bool(reasons),
    }
