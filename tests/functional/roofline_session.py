"""A session whose analysis is the real core's on the real H200 trace of the best bf16 stack
(tests/data/h200), costs filled from the model's shapes (tests/unit/h200_budget_data), served
to the app through Services: the Roofline tab's plot and budget on real figures."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from analyzers.ceilings import Ceilings
from analyzers.run_analysis import RunAnalysis, analyze_tables
from profilers.parsers.detect import load_artifact
from sessions.records import RunRecord, RunStatus
from sessions.store import SessionStore
from tests.unit import h200_budget_data as h200
from workbench.api.services import Services
from workloads.spec import RunSpec

RUN_ID = "20261201-030001-be9dc0"


@functools.lru_cache(maxsize=2)
def h200_analysis(with_costs: bool = True, bytes_known: bool = True) -> RunAnalysis:
    parsed = load_artifact(h200.TRACE)
    kernels = h200.fill_costs(parsed.kernels) if with_costs else parsed.kernels
    if not bytes_known:  # what a torch trace with with_flops alone gives: FLOPs, no bytes
        kernels = kernels.assign(dram_bytes=kernels["dram_bytes"] * float("nan"))
    ceilings = Ceilings.from_dict(next(iter(json.loads(h200.CEILINGS.read_text()).values())))
    return analyze_tables("kineto", kernels, runtime=parsed.runtime, ops=parsed.ops,
                          ceilings=ceilings, device_name="NVIDIA H200", precision="bf16",
                          annotations=h200.annotations(), workload="dense", layers=h200.LAYERS,
                          device_kind="cuda")


def seed(home: Path) -> RunRecord:
    store = SessionStore(home)
    store.run_dir(RUN_ID).mkdir(parents=True, exist_ok=True)
    record = RunRecord(id=RUN_ID, created_at=1_796_000_000.0, spec=RunSpec(
        workload="dense", preset="llama-3.1-8b", layers=list(h200.LAYERS), profiler="torch",
        device="cuda", repeat=5, warmup=2))
    record.status, record.finished_at = RunStatus.OK, record.created_at + 106
    record.env = {"device_name": "NVIDIA H200", "device_kind": "cuda", "driver": "580.159.04"}
    store.save(record)
    return record


def services(**analysis: bool) -> Services:
    return Services(load_run_analysis=lambda store, record: h200_analysis(**analysis))
