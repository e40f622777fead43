"""Fakes with the core front doors' signatures, for driving the app without a child process.

``FakeCore.run`` emits the runner's progress events, writes a RunRecord into the real
SessionStore and saves a ~100k-row KernelTable into the run folder; ``load_run_analysis``
reads it back and runs the real breakdown analyzers; ``diff_runs`` calls the real
analyzers.diff.diff_runs on the two tables.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from analyzers.breakdown import category_breakdown, kernel_breakdown
from profilers.nvml import summarize_samples
from profilers.parsers.kernel_table import make_kernel_table
from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from workbench.api.device import DeviceProbe
from workbench.api.services import Services
from workloads.spec import RunSpec

INJECTED_NAME = "[bold red]x[/]"  # must render literally, never as markup
KERNELS_FILE = "kernels.pkl"
H100 = DeviceProbe(cuda=True, gpu_count=1, name="NVIDIA H100 80GB HBM3", cc=(9, 0),
                   memory_bytes=80 * 2**30)


@functools.lru_cache(maxsize=4)
def kernel_frame(rows: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = ([f"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_{i}" for i in range(120)]
             + [f"flash_fwd_splitkv_kernel_{i}" for i in range(40)]
             + [f"triton_poi_fused_add_mul_{i}" for i in range(200)]
             + ["vectorized_gather_kernel", "ncclDevKernel_AllReduce_Sum_bf16_RING_LL",
                INJECTED_NAME])
    index = rng.integers(0, len(names), rows)
    dur = (rng.lognormal(9.0, 1.0, rows) * scale).astype("int64") + 500
    start = np.cumsum(dur + 200)
    return make_kernel_table({
        "name": [names[i] for i in index], "dur_ns": dur, "start_ns": start,
        "stream": np.full(rows, 7), "device": np.zeros(rows, dtype=int),
        "grid": [(int(i) % 132 + 1, 1, 1) for i in index],
        "block": [(128, 1, 1)] * rows, "registers": (index % 200 + 32),
    }, source="torch")


def roofline_frame(kt: pd.DataFrame) -> pd.DataFrame:
    """A few points with analyzers.roofline.points_frame column names (the adapter renames)."""
    top = kernel_breakdown(kt, top=12)
    rows = []
    for i, row in enumerate(top.itertuples()):
        intensity = 0.5 * 4.0 ** (i % 8)
        fps = min(3.35e12 * intensity, 989e12) * (0.2 + 0.06 * i)
        rows.append({"name": row.name, "category": row.category, "source": "estimate",
                     "dur_ns": float(row.total_ns), "arithmetic_intensity": intensity,
                     "achieved_flops_per_s": fps, "achieved_bytes_per_s": fps / intensity,
                     "pct_of_roof": 20.0 + 6 * i,
                     "bound": "memory" if intensity < 295 else "compute"})
    return pd.DataFrame(rows)


CEILINGS = SimpleNamespace(device_name="NVIDIA H100 80GB HBM3",
                           peak_flops={"bf16": 989e12, "fp32": 67e12, "fp8": None},
                           dram_bw=3.35e12, source="spec")


def write_run(store: SessionStore, spec: RunSpec, rows: int, run_id: str | None = None,
              created_at: float | None = None, status: str = "ok") -> RunRecord:
    """A finished run as the runner would store it (fixed id/time for snapshots)."""
    if run_id is None:
        record = store.new_run(spec)
    else:
        store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        record = RunRecord(id=run_id, created_at=created_at or 1.7e9, spec=spec)
    speed = 1.0 + 0.25 * (len(spec.layers) - 1)
    kt = kernel_frame(rows, seed=len(spec.layers), scale=1.0 / speed)
    kt.to_pickle(store.run_dir(record.id) / KERNELS_FILE)
    samples = [round(12.0 / speed + 0.01 * k, 4) for k in range(spec.repeat)]
    record.status = RunStatus(status)
    record.artifacts = {"kernels": KERNELS_FILE, "log": "run.log"}
    record.metrics = {
        "latency_ms": {"median": float(np.median(samples)), "mean": float(np.mean(samples)),
                       "p10": samples[0], "p90": samples[-1], "p99": samples[-1],
                       "stdev": float(np.std(samples)), "min": samples[0], "max": samples[-1],
                       "n": len(samples), "samples": samples},
        "step": "decode", "tokens_per_s": 2 * 1000 / float(np.median(samples)),
        "ttft_ms": 30.5, "tpot_ms": float(np.median(samples)), "peak_mem_bytes": 123456789,
        "achieved_tflops": None, "achieved_gb_s": 812.5,
    }
    record.parity = {"reference": "L0", "max_rel_err": 1.2e-6, "top1_agreement": 1.0,
                     "tolerance": 1e-3, "ok": True, "tokens_compared": 16}
    record.env = {"device_name": "NVIDIA H100 80GB HBM3", "cc": "9.0", "driver": "580.95",
                  "cuda": "12.8", "torch": "2.9.0"}
    record.telemetry = summarize_samples(  # the real sampler's summary of fixed samples
        [{"t_s": 0.1 * k, "power_w": 380.0 + 30 * k, "sm_mhz": 1980 - 15 * (k == 3),
          "mem_mhz": 2619, "temp_c": 55 + k, "gpu_util": 90 + k, "mem_used_bytes": 2**33,
          "throttle_mask": 0} for k in range(4)], 0.1, device_name="NVIDIA H100 80GB HBM3",
        power_limit_w=700.0)
    record.label = "run label [italic]not markup[/]" if run_id else ""
    record.finished_at = record.created_at + 3
    store.save(record)
    return record


class FakeCore:
    def __init__(self, rows: int = 100_000, block: bool = False,
                 probe: DeviceProbe = H100) -> None:
        self.rows, self.block, self.probe_result = rows, block, probe
        self.started = threading.Event()
        self.cancel_seen = threading.Event()
        self.specs: list[RunSpec] = []

    def run(self, spec: RunSpec, store: SessionStore, on_event: Callable | None = None,
            cancel: threading.Event | None = None) -> RunRecord:
        emit = on_event or (lambda event: None)
        self.specs.append(spec)
        emit({"event": "phase", "phase": "build", "message": "building dense/tiny"})
        emit({"event": "log", "line": "loading [bold]weights[/] from seed 0", "stream": "stdout"})
        emit({"event": "phase", "phase": "warmup", "message": "2 warmup steps"})
        for i in (1, 2):
            emit({"event": "step", "phase": "warmup", "i": i, "n": 2})
        emit({"event": "phase", "phase": "measure", "message": f"{spec.repeat} timed steps"})
        for i in range(1, spec.repeat + 1):
            emit({"event": "step", "phase": "measure", "i": i, "n": spec.repeat})
            emit({"event": "telemetry", "power_w": 300.0 + 40 * i, "sm_mhz": 1980, "mem_mhz": 2619,
                  "gpu_util": 90 + i, "mem_used_bytes": 2**33, "temp_c": 55})
        self.started.set()
        if self.block:
            assert cancel is not None
            cancel.wait(20)
            self.cancel_seen.set()
            record = store.new_run(spec)
            record.status, record.error = RunStatus.CANCELLED, "cancelled by the user"
            store.save(record)
            emit({"event": "done", "status": "cancelled", "run_id": record.id})
            return record
        record = write_run(store, spec, self.rows)
        emit({"event": "done", "status": "ok", "run_id": record.id})
        return record

    def load_run_analysis(self, store: SessionStore, record: RunRecord) -> Any:
        path = Path(store.run_dir(record.id)) / KERNELS_FILE
        if not path.is_file():
            return SimpleNamespace(kernels=None, categories=None, top_kernels=None,
                                   roofline=None, ceilings=CEILINGS, advice=[],
                                   notes=["no kernel-level artifact in this run"])
        kt = pd.read_pickle(path)
        return SimpleNamespace(kernels=kt, categories=category_breakdown(kt),
                               top_kernels=kernel_breakdown(kt, top=15),
                               roofline=roofline_frame(kt), ceilings=CEILINGS, advice=[],
                               notes=[])

    def diff_runs(self, store: SessionStore, baseline: RunRecord, candidate: RunRecord) -> Any:
        from analyzers.diff import diff_runs

        kts = [self.load_run_analysis(store, r).kernels for r in (baseline, candidate)]
        return diff_runs(baseline, candidate, kt_baseline=kts[0], kt_candidate=kts[1],
                         n_boot=200)

    def services(self) -> Services:
        return Services(run=self.run, load_run_analysis=self.load_run_analysis,
                        diff_runs=self.diff_runs, probe=lambda: self.probe_result)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
