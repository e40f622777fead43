"""The facts the advice rules read, gathered once from a RunAnalysis and (optionally) the run
record: GPU time by category, the kernel table, the timeline, the roofline, the device, and the
record's metrics with spread, parity, telemetry, layers and MoE router health. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analyzers.ceilings import Ceilings, spec_ceilings

# Compute capability by device family, for artifacts that do not carry it (env.cc wins).
_CC_BY_NAME = [
    (re.compile(r"b200|b100|gb200", re.I), 10.0), (re.compile(r"h100|h200|h800|gh200", re.I), 9.0),
    (re.compile(r"l40|l4\b|rtx 40|ada", re.I), 8.9), (re.compile(r"a100|a800|a30\b", re.I), 8.0),
    (re.compile(r"a10\b|a40|rtx 30", re.I), 8.6), (re.compile(r"v100", re.I), 7.0),
    (re.compile(r"t4\b", re.I), 7.5),
]


@dataclass
class Facts:
    source: str  # "session <id> (<artifact>)" or the artifact's name: cited in every evidence
    kernels: pd.DataFrame | None = None
    total_ns: int | None = None  # sum of GPU activity durations
    category_ns: dict[str, int] = field(default_factory=dict)
    category_share: dict[str, float] = field(default_factory=dict)
    top_kernels: pd.DataFrame | None = None
    temporal: Any = None
    roofline: pd.DataFrame | None = None
    roofline_aggregate: Any = None
    ceilings: Ceilings | None = None
    kernel_metrics: pd.DataFrame | None = None
    device_name: str | None = None
    device_kind: str | None = None  # cuda | cpu | None (unknown)
    cc: float | None = None
    ranks: int = 1
    step: str | None = None  # decode | prefill | ...
    dtype: str | None = None
    layers: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    router: dict[str, Any] = field(default_factory=dict)

    @property
    def has_kernels(self) -> bool:
        return self.kernels is not None and len(self.kernels) > 0 and bool(self.total_ns)

    def share_of(self, ns: float) -> float | None:
        return float(ns) / self.total_ns if self.total_ns else None


def _record_dict(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    if isinstance(record, dict):
        return record
    to_dict = getattr(record, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def compute_capability(env: dict[str, Any], device_name: str | None) -> float | None:
    cc = env.get("cc")
    if isinstance(cc, (list, tuple)) and len(cc) == 2:
        return float(cc[0]) + float(cc[1]) / 10.0
    if isinstance(cc, (int, float)) and not isinstance(cc, bool):
        return float(cc)
    if isinstance(cc, str):
        try:
            return float(cc)
        except ValueError:
            pass
    for pattern, value in _CC_BY_NAME:
        if device_name and pattern.search(device_name):
            return value
    return None


def build_facts(analysis: Any, record: Any = None, source: str | None = None) -> Facts:
    """Facts of one analyzed run. ``analysis`` is a RunAnalysis (or None for a run without a
    kernel artifact); ``record`` a RunRecord or its dict; ``source`` names where the numbers
    came from (default: the session id and its profiler artifact)."""
    data = _record_dict(record)
    env = data.get("env") or {}
    spec = data.get("spec") or {}
    extra = data.get("extra") or {}
    nested_extra = extra.get("extra")
    workload_extra: dict[str, Any] = nested_extra if isinstance(nested_extra, dict) else {}
    router = extra.get("router") or workload_extra.get("router") or {}
    if source is None:
        artifacts = data.get("artifacts") or {}
        artifact = next((artifacts[r] for r in ("ncu_csv", "nsys_sqlite", "trace", "ncu_rep")
                         if r in artifacts), None)
        run_id = data.get("id")
        if run_id:
            name = str(artifact).replace("\\", "/").rsplit("/", 1)[-1] if artifact else None
            source = f"session {run_id}" + (f" ({name})" if name else "")
        else:
            source = getattr(analysis, "source", None) or "analysis"
    kt = getattr(analysis, "kernels", None)
    device_name = getattr(analysis, "device_name", None) or env.get("device_name")
    facts = Facts(
        source=source, kernels=kt if kt is not None and len(kt) else None,
        top_kernels=getattr(analysis, "top_kernels", None),
        temporal=getattr(analysis, "temporal", None),
        roofline=getattr(analysis, "roofline", None),
        roofline_aggregate=getattr(analysis, "roofline_aggregate", None),
        ceilings=getattr(analysis, "ceilings", None) or spec_ceilings(device_name),
        kernel_metrics=getattr(analysis, "kernel_metrics", None),
        device_name=device_name,
        device_kind=env.get("device_kind") or ("cuda" if kt is not None and len(kt) else None),
        cc=compute_capability(env, device_name),
        step=(data.get("metrics") or {}).get("step"),
        dtype=(workload_extra.get("shape") or {}).get("dtype") or (spec.get("params") or {}).get("dtype"),
        layers=tuple(spec.get("layers") or ()),
        metrics=data.get("metrics") or {}, parity=data.get("parity") or {},
        telemetry=data.get("telemetry") or {}, env=env,
        router=router if isinstance(router, dict) else {},
    )
    if facts.kernels is not None:
        facts.total_ns = int(facts.kernels["dur_ns"].sum())
        cats = getattr(analysis, "categories", None)
        if cats is not None:
            for row in cats.itertuples():
                facts.category_ns[str(row.category)] = int(row.total_ns)
                if row.share is not None and row.share == row.share:
                    facts.category_share[str(row.category)] = float(row.share)
        ranks = facts.kernels["rank"].dropna()
        facts.ranks = max(int(ranks.nunique()), 1) if len(ranks) else 1
    return facts
