"""Roofline ceilings: peak FLOP/s per precision and DRAM bandwidth of one device.

Two sources: ``measured`` (``python -m workloads.calibrate`` on the device: GEMM and copy
throughput with torch) and ``spec`` (the data-sheet table below, dense — no sparsity — for
reports and as the fallback). Measured ceilings are cached in a JSON-able dict keyed by device
name + driver, so a driver upgrade asks for a fresh calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PRECISIONS = ("bf16", "fp16", "fp8", "tf32", "fp32")
SOURCES = ("measured", "spec")


@dataclass(frozen=True)
class Ceilings:
    """What one device can do. FLOP/s per precision (None where the device cannot or we do not
    know), DRAM bandwidth in B/s. ``tensor_clock_hz`` is the SM clock the spec-sheet tensor
    figures assume (lets an estimate scale a peak to the clock a kernel really ran at)."""

    device_name: str
    peak_flops: dict[str, float | None]
    dram_bw: float | None
    source: str  # measured | spec
    driver: str | None = None
    sm_count: int | None = None
    tensor_clock_hz: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def peak(self, precision: str) -> float | None:
        """Peak FLOP/s for ``precision``; fp16 falls back to bf16 (same rate on every GPU listed)."""
        value = self.peak_flops.get(precision)
        if value is None and precision == "fp16":
            value = self.peak_flops.get("bf16")
        return value

    def ridge(self, precision: str) -> float | None:
        """Arithmetic intensity (FLOP/B) where the memory roof meets the compute roof."""
        peak = self.peak(precision)
        if peak is None or not self.dram_bw:
            return None
        return peak / self.dram_bw

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_name": self.device_name, "peak_flops": dict(self.peak_flops),
            "dram_bw": self.dram_bw, "source": self.source, "driver": self.driver,
            "sm_count": self.sm_count, "tensor_clock_hz": self.tensor_clock_hz,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ceilings:
        return cls(
            device_name=str(data.get("device_name") or ""),
            peak_flops={p: _num(data.get("peak_flops", {}).get(p)) for p in PRECISIONS},
            dram_bw=_num(data.get("dram_bw")),
            source=str(data.get("source") or "spec"),
            driver=data.get("driver"),
            sm_count=data.get("sm_count"),
            tensor_clock_hz=_num(data.get("tensor_clock_hz")),
            notes=tuple(data.get("notes") or ()),
        )


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and value > 0 else None  # NaN / 0 mean unknown


def _spec(name: str, bf16: float, fp8: float | None, tf32: float, fp32: float, bw: float,
          sm_count: int, clock_hz: float) -> Ceilings:
    return Ceilings(
        device_name=name,
        peak_flops={"bf16": bf16, "fp16": bf16, "fp8": fp8, "tf32": tf32, "fp32": fp32},
        dram_bw=bw, source="spec", sm_count=sm_count, tensor_clock_hz=clock_hz,
        notes=("data sheet, dense (no sparsity)",),
    )


# Data-sheet figures, dense. tensor_clock_hz = bf16 peak / (SMs * dense bf16 FLOP/clk/SM).
SPEC_TABLE: dict[str, Ceilings] = {
    "H100 SXM": _spec("H100 SXM", 989.4e12, 1978.9e12, 494.7e12, 66.9e12, 3.35e12, 132, 1.830e9),
    "H100 PCIe": _spec("H100 PCIe", 756.0e12, 1513.0e12, 378.0e12, 51.2e12, 2.0e12, 114, 1.619e9),
    "H100 NVL": _spec("H100 NVL", 835.5e12, 1670.9e12, 417.8e12, 60.0e12, 3.9e12, 132, 1.545e9),
    "H200": _spec("H200", 989.4e12, 1978.9e12, 494.7e12, 66.9e12, 4.8e12, 132, 1.830e9),
    "A100 SXM 80GB": _spec("A100 SXM 80GB", 312.0e12, None, 156.0e12, 19.5e12, 2.039e12, 108,
                           1.410e9),
    "L40S": _spec("L40S", 362.05e12, 733.0e12, 183.0e12, 91.6e12, 0.864e12, 142, 2.520e9),
    "B200": _spec("B200", 2250e12, 4500e12, 1100e12, 75.0e12, 8.0e12, 148, 1.965e9),
}

# Loose name matching, first match wins ("NVIDIA H100 80GB HBM3" -> H100 SXM).
_NAME_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"h200"), "H200"),
    (re.compile(r"h100.*pcie|pcie.*h100"), "H100 PCIe"),
    (re.compile(r"h100.*nvl"), "H100 NVL"),
    (re.compile(r"h100"), "H100 SXM"),
    (re.compile(r"a100"), "A100 SXM 80GB"),
    (re.compile(r"l40s"), "L40S"),
    (re.compile(r"b200"), "B200"),
]


def spec_key(device_name: str | None) -> str | None:
    """The spec-table entry for a device name as CUDA/NVML spell it, or None."""
    low = (device_name or "").lower()
    for pattern, key in _NAME_RULES:
        if pattern.search(low):
            return key
    return None


def spec_ceilings(device_name: str | None) -> Ceilings | None:
    """Data-sheet ceilings for ``device_name`` (None for a device not in the table)."""
    key = spec_key(device_name)
    return SPEC_TABLE[key] if key else None


def ceilings_from_calibration(measurement: dict[str, Any]) -> Ceilings:
    """Turn the JSON written by ``python -m workloads.calibrate`` into measured Ceilings.

    Expected keys: device_name, driver, gemm_flops {bf16, fp8, tf32, fp32} in FLOP/s,
    copy_bytes_per_s (bytes read + written per second). Missing figures stay None.
    """
    gemm = measurement.get("gemm_flops") or {}
    peaks = {p: _num(gemm.get(p)) for p in PRECISIONS}
    notes = ["measured with torch (median after warm-up)"]
    if peaks["fp16"] is None and peaks["bf16"] is not None:
        peaks["fp16"] = peaks["bf16"]
        notes.append("fp16 taken as the bf16 rate")
    spec = spec_ceilings(measurement.get("device_name"))
    return Ceilings(
        device_name=str(measurement.get("device_name") or ""),
        peak_flops=peaks,
        dram_bw=_num(measurement.get("copy_bytes_per_s")),
        source="measured",
        driver=measurement.get("driver"),
        sm_count=measurement.get("sm_count") or (spec.sm_count if spec else None),
        tensor_clock_hz=spec.tensor_clock_hz if spec else None,
        notes=tuple(notes),
    )


def calibration_key(device_name: str | None, driver: str | None) -> str:
    return f"{device_name or 'unknown'}|{driver or 'unknown'}"


def cache_put(cache: dict[str, Any], ceilings: Ceilings) -> dict[str, Any]:
    """A copy of ``cache`` (JSON-able dict) holding ``ceilings`` under device + driver."""
    out = dict(cache)
    out[calibration_key(ceilings.device_name, ceilings.driver)] = ceilings.to_dict()
    return out


def cache_get(cache: dict[str, Any], device_name: str | None,
              driver: str | None) -> Ceilings | None:
    entry = cache.get(calibration_key(device_name, driver))
    return Ceilings.from_dict(entry) if isinstance(entry, dict) else None


def resolve_ceilings(device_name: str | None, driver: str | None = None,
                     cache: dict[str, Any] | None = None) -> Ceilings | None:
    """Measured ceilings from the cache when this device + driver was calibrated, else spec."""
    if cache:
        found = cache_get(cache, device_name, driver)
        if found is not None:
            return found
    return spec_ceilings(device_name)
