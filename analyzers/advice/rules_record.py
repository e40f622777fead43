"""Advice rules over the run record: throttling, parity, noisy measurements, router balance.
None of them is a time the step loses to a kernel, so none says microseconds to recover."""

from __future__ import annotations

from typing import Any

import numpy as np

from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding
from analyzers.advice.rules_run import num as _num
from workloads.spec import replays_kernels

THROTTLE_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
NOISY_CV = 0.05
MIN_REPEATS = 3
GINI_MAX = 0.20  # the seed's router target
LOAD_CV_MAX = 0.10  # std / mean of the expert load (the seed's "variance < 10% of mean")


def throttling(f: Facts) -> Finding | None:
    tel = f.telemetry
    if not tel or not tel.get("available"):
        return None
    reasons = [r for r in tel.get("throttle_reasons") or [] if r in THROTTLE_REASONS]
    if not reasons:
        return None
    sm_min, sm_max = _num(tel.get("sm_mhz_min")), _num(tel.get("sm_mhz_max"))
    evidence = [Evidence("throttle reasons seen (NVML)", ", ".join(reasons), "none", f.source, "", "not")]
    if sm_min is not None and sm_max is not None:
        evidence.append(Evidence("SM clock range", f"{sm_min:.0f}-{sm_max:.0f} MHz", None, f.source,
                                 comparison=""))
    for key, label, unit in (("power_w_max", "max power", "W"), ("power_limit_w", "power limit", "W"),
                             ("temp_c_max", "max temperature", "C")):
        if _num(tel.get(key)) is not None:
            evidence.append(Evidence(label, _num(tel.get(key)), None, f.source, unit, ""))
    kind = "thermal" if any("thermal" in r for r in reasons) else "power"
    return Finding(
        rule="throttling",
        finding=f"The GPU was {kind}-throttled during the run ({', '.join(reasons)}): clocks and "
                "timings are not at their steady state.",
        evidence=tuple(evidence),
        action="Re-measure with the GPU cool and idle beforehand, check the power limit "
               "(nvidia-smi -q -d POWER) and cooling; compare runs only under the same clocks.",
        expected_effect="Stable, comparable timings; throttled runs understate the hardware.",
        confidence="high", impact=0.3,
        recoverable="n/a per step: a measurement condition, not time a fix wins back (throttled "
                    "timings understate the hardware)")


def parity_failure(f: Facts) -> Finding | None:
    if f.parity.get("ok") is not False:
        return None
    tol = f.parity.get("tolerance")
    tol = tol if isinstance(tol, dict) else {"max_rel_err": tol}
    evidence = (Evidence("max relative error vs L0", _num(f.parity.get("max_rel_err")),
                         _num(tol.get("max_rel_err")), f.source, comparison=">"),
                Evidence("top-1 token agreement vs L0", _num(f.parity.get("top1_agreement")),
                         _num(tol.get("min_top1_agreement")), f.source, "share", "<"))
    return Finding(
        rule="parity_failure",
        finding="The output differs from the L0 reference beyond the precision's tolerance: this "
                "run's timings are not a valid speedup.",
        evidence=evidence,
        action=f"Run each layer of {'+'.join(f.layers) or 'the stack'} alone against L0 to find "
               "the one that breaks parity; check its precision (TF32/FP8 need their own "
               "tolerance) and its correctness (masks, KV-cache positions).",
        expected_effect="A layer stack whose speedup counts.",
        confidence="high", impact=1.0,
        recoverable="n/a: no speedup counts until parity holds")


def noisy_measurement(f: Facts) -> Finding | None:
    if replays_kernels(f.profiler):
        return None  # one repeat by policy, and its latency is no timing: nothing to trust
    lat = f.metrics.get("latency_ms") or {}
    mean, stdev, n = _num(lat.get("mean")), _num(lat.get("stdev")), _num(lat.get("n"))
    cv = stdev / mean if stdev is not None and mean else None
    few = n is not None and n < MIN_REPEATS
    if not few and (cv is None or cv < NOISY_CV):
        return None
    p10, p90, med = _num(lat.get("p10")), _num(lat.get("p90")), _num(lat.get("median"))
    evidence = [Evidence("latency CV (stdev / mean)", cv, NOISY_CV, f.source, "share",
                         ">=" if cv is not None and cv >= NOISY_CV else "<"),
                Evidence("measured repeats", int(n) if n is not None else None, MIN_REPEATS,
                         f.source, comparison="<" if few else ">=")]
    if p10 is not None and p90 is not None and med:
        evidence.append(Evidence("p90-p10 spread / median", (p90 - p10) / med, None, f.source, "share", ""))
    return Finding(
        rule="noisy_measurement",
        finding=("Run-to-run spread is high" if cv is not None and cv >= NOISY_CV else
                 "Too few repeats to trust the spread")
                + (f": CV {cv:.1%} over {int(n) if n else '?'} repeats" if cv is not None else "")
                + "; differences smaller than that are noise.",
        evidence=tuple(evidence),
        action="Use more repeats and warm-up steps (--repeat 20 --warmup 5), keep other work off "
               "the GPU/CPU, fix clocks where allowed; compare runs with the noise-aware diff.",
        expected_effect="Confidence intervals narrow enough to see a real speedup.",
        confidence="high" if cv is not None and cv >= 2 * NOISY_CV else "medium", impact=0.15,
        recoverable="n/a: a measurement finding; it bounds the changes a diff can see")


def gini(values: list[float]) -> float | None:
    """Gini coefficient of non-negative loads (0 = equal, 1 = one expert takes all)."""
    x = np.sort(np.asarray([v for v in values if v is not None], dtype="float64"))
    if len(x) == 0 or x.sum() <= 0:
        return None
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def _first_num(d: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = _num(d.get(key))
        if value is not None:
            return value
    return None


def expert_imbalance(f: Facts) -> Finding | None:
    """Router health from ``details.router`` (workloads.router_health: gini / gini_max, load_cv /
    load_cv_max over MoE layers; worst layer preferred) or a raw ``tokens_per_expert`` list."""
    r = f.router
    if not r or r.get("available") is False:
        return None
    tokens = r.get("tokens_per_expert") if isinstance(r.get("tokens_per_expert"), list) else None
    g = _first_num(r, "gini_max", "gini")
    cv = _first_num(r, "load_cv_max", "load_cv")
    if tokens:
        arr = np.asarray([float(v) for v in tokens], dtype="float64")
        g = g if g is not None else gini(list(arr))
        cv = cv if cv is not None else (float(arr.std() / arr.mean()) if arr.mean() > 0 else None)
    over_gini = g is not None and g >= GINI_MAX
    over_cv = cv is not None and cv >= LOAD_CV_MAX
    if not over_gini and not over_cv:
        return None
    evidence = [Evidence("Gini coefficient of expert load (worst layer)", g, GINI_MAX, f.source,
                         comparison=">=" if over_gini else "<"),
                Evidence("load CV (std / mean tokens per expert)", cv, LOAD_CV_MAX, f.source,
                         comparison=">=" if over_cv else "<")]
    lo = _first_num(r, "tokens_per_expert_min")
    hi = _first_num(r, "tokens_per_expert_max")
    if tokens:
        lo, hi = float(min(tokens)), float(max(tokens))
    if lo is not None and hi is not None:
        evidence.append(Evidence("tokens per expert (min / max)", f"{lo:.0f} / {hi:.0f}", None,
                                 f.source, comparison=""))
    parts = ([f"Gini {g:.2f}"] if g is not None else []) + ([f"load CV {cv:.0%}"] if cv is not None else [])
    return Finding(
        rule="expert_imbalance",
        finding=f"Expert load is imbalanced ({', '.join(parts)}; targets Gini < {GINI_MAX}, "
                f"CV < {LOAD_CV_MAX:.0%}): the busiest experts set the MoE layer's time.",
        evidence=tuple(evidence),
        action="Balance the router: auxiliary load-balancing loss or bias-based (aux-loss-free) "
               "balancing, capacity factor / token dropping, or expert replication for hot "
               "experts under expert parallelism.",
        expected_effect="The MoE layer time approaches the mean expert load instead of the max.",
        confidence="medium", impact=min(max(g or 0, (cv or 0) / 2) * 0.5, 0.4),
        recoverable="n/a per step from the trace: the expert GEMMs are not told apart from the "
                    "others; balanced, the MoE layer takes the mean expert load instead of the max")


RECORD_RULES = (parity_failure, throttling, noisy_measurement, expert_imbalance)
