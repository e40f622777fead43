"""Advice rules over the timeline and the run record: idle GPU, copies and syncs in the step,
distance from the bandwidth roof, throttling, parity, noisy measurements, router balance."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding

LAUNCH_BOUND_IDLE_SHARE = 0.30
SHORT_KERNEL_SHARE = 0.50
DECODE_ROOF_FRACTION = 0.50
HOST_COPY_SHARE = 0.03
SYNC_MIN_COUNT = 2
THROTTLE_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")
NOISY_CV = 0.05
MIN_REPEATS = 3
GINI_MAX = 0.20  # the seed's router target
LOAD_CV_MAX = 0.10  # std / mean of the expert load (the seed's "variance < 10% of mean")

_HOST_COPY_RE = re.compile(r"HtoD|DtoH|Host.?to.?Device|Device.?to.?Host|Pageable|Pinned", re.I)
_PAGEABLE_RE = re.compile(r"Pageable", re.I)
# A lone cudaDeviceSynchronize is the measurement fence, not a sync in the step.
_FENCE = "cudaDeviceSynchronize"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value else None


def launch_bound(f: Facts) -> Finding | None:
    t = f.temporal
    if t is None or t.idle_share is None:
        return None
    gap_share = (t.launch_bound_gap_ns / t.gaps.total_ns
                 if t.launch_bound_gap_ns is not None and t.gaps.total_ns else None)
    if t.host_bound is True:
        how = "idle gaps end with work the CPU issued only after the GPU went idle"
    elif (t.host_bound is None and t.idle_share >= LAUNCH_BOUND_IDLE_SHARE
          and (t.short_kernel_share or 0) >= SHORT_KERNEL_SHARE):
        how = "no runtime events; many short kernels with the GPU mostly idle"
    else:
        return None
    mean_kernel_ns = (f.total_ns / t.kernel_count) if f.total_ns and t.kernel_count else None
    evidence = [Evidence("GPU idle share of the window", t.idle_share, LAUNCH_BOUND_IDLE_SHARE,
                         f.source, "share"),
                Evidence(f"kernels shorter than {t.short_threshold_ns / 1000:.0f} us",
                         t.short_kernel_share, SHORT_KERNEL_SHARE, f.source, "share",
                         ">=" if (t.short_kernel_share or 0) >= SHORT_KERNEL_SHARE else "<"),
                Evidence("kernel launches", t.kernel_count, None, f.source, comparison="")]
    if gap_share is not None:
        evidence.insert(1, Evidence("idle time waiting for the next launch", gap_share, 0.5,
                                    f.source, "share"))
    if mean_kernel_ns is not None:
        evidence.append(Evidence("mean GPU activity duration", round(mean_kernel_ns / 1000, 2), None,
                                 f.source, "us", ""))
    decode = f.step == "decode"
    impact = t.idle_share * (gap_share if gap_share is not None else 0.7)
    return Finding(
        rule="launch_bound",
        finding=f"The GPU is idle {t.idle_share:.0%} of the time waiting for the CPU to launch "
                f"work ({how}).",
        evidence=tuple(evidence),
        action="Capture the step in a CUDA graph (layer L4) or torch.compile(mode="
               "'reduce-overhead') (layer L5), so one launch replays all kernels; fewer, larger "
               "kernels (fusion) help too.",
        expected_effect=f"Up to {impact:.0%} of the step's wall time recovered"
                        + (" (decode steps gain most)" if decode else "") + ".",
        confidence="high" if t.host_bound is True else "medium", impact=impact, layer="L4")


def decode_below_bandwidth_roof(f: Facts) -> Finding | None:
    if f.step != "decode" or f.device_kind != "cuda" or f.ceilings is None or not f.ceilings.dram_bw:
        return None
    achieved = _num(f.metrics.get("achieved_gb_s"))
    how = "bytes per step / step latency"
    if achieved is None:
        agg = f.roofline_aggregate
        if agg is None or agg.achieved_bytes_per_s is None or (agg.bytes_time_coverage or 0) < 0.5:
            return None
        achieved, how = agg.achieved_bytes_per_s / 1e9, "roofline step placement"
    roof = f.ceilings.dram_bw / 1e9
    frac = achieved / roof
    if frac >= DECODE_ROOF_FRACTION:
        return None
    return Finding(
        rule="decode_below_bandwidth_roof",
        finding=f"Decode reaches {achieved:,.0f} GB/s, {frac:.0%} of the {roof:,.0f} GB/s memory "
                f"roof ({f.ceilings.source} ceiling; achieved from {how}).",
        evidence=(Evidence("achieved bandwidth", round(achieved, 1), None, f.source, "GB/s", ""),
                  Evidence("share of the DRAM roof", frac, DECODE_ROOF_FRACTION, f.source, "share", "<"),
                  Evidence("DRAM roof", round(roof, 1), None,
                           f"{f.ceilings.source} ceilings ({f.ceilings.device_name})", "GB/s", "")),
        action="Decode reads every weight once per token: remove the gaps (CUDA graphs, L4), "
               "fuse the small kernels (torch.compile, L5), use a static KV cache (L2), and "
               "bandwidth-tuned M=1 GEMMs; FP8 weights (L5) halve the bytes.",
        expected_effect=f"Up to {1 / max(frac, 1e-3):.1f}x decode throughput at the roof.",
        confidence="medium", impact=min(1 - frac, 0.9) * 0.5, layer="L4")


def host_device_copies(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt = f.kernels
    assert kt is not None
    copies = kt[kt["kind"].astype(str) == "memcpy"]
    if not len(copies):
        return None
    names = copies["name"].astype(str)
    host = np.asarray(names.str.contains(_HOST_COPY_RE))
    host_ns = int(copies["dur_ns"].to_numpy(dtype="int64", na_value=0)[host].sum())
    pageable = int(np.asarray(names.str.contains(_PAGEABLE_RE)).sum())
    t = f.temporal
    activity = t.activity_ns if t is not None and t.activity_ns else f.total_ns
    share = host_ns / activity if activity else 0.0
    if share < HOST_COPY_SHARE:
        return None
    return Finding(
        rule="host_device_copies",
        finding=f"Host-device copies inside the profiled steps take {share:.0%} of GPU activity "
                f"({int(host.sum())} copies, {pageable} from pageable memory).",
        evidence=(Evidence("host<->device copy share of GPU activity", share, HOST_COPY_SHARE,
                           f.source, "share"),
                  Evidence("pageable copies", pageable, 0, f.source, comparison=">")),
        action="Keep inputs and the KV cache on the device; where a copy is needed, copy from "
               "pinned memory with .to(device, non_blocking=True) (layer L2: pinned host "
               "buffers) so it overlaps compute.",
        expected_effect="Pageable copies stage through a bounce buffer and block the host; pinned "
                        "async copies run at full PCIe/NVLink rate and overlap kernels.",
        confidence="high" if pageable else "medium", impact=share, layer="L2")


def syncs_in_step(f: Facts) -> Finding | None:
    t = f.temporal
    if t is None or not t.syncs:
        return None
    step_syncs = [s for s in t.syncs if s.name != _FENCE]
    fences = sum(s.count for s in t.syncs if s.name == _FENCE)
    count = sum(s.count for s in step_syncs) + max(fences - 1, 0)
    if count < SYNC_MIN_COUNT:
        return None
    sync_ns = sum(s.total_ns for s in step_syncs)
    share = sync_ns / t.window_ns if t.window_ns else None
    names = ", ".join(f"{s.name} x{s.count}" for s in t.syncs[:4])
    return Finding(
        rule="syncs_in_step",
        finding=f"The host waits for the GPU {count} times inside the profiled steps ({names}).",
        evidence=(Evidence("blocking synchronizations", count, SYNC_MIN_COUNT, f.source),
                  Evidence("host time blocked in them, share of the window", share, None, f.source,
                           "share", "")),
        action="Remove .item(), .cpu(), .tolist(), torch.nonzero / boolean-mask indexing and "
               "prints from the step; keep decisions on the device. "
               "torch.cuda.set_sync_debug_mode('warn') points at each one.",
        expected_effect="The CPU runs ahead and keeps the launch queue full; a prerequisite for "
                        "CUDA graphs (L4).",
        confidence="high" if count >= 10 else "medium",
        impact=min(0.05 + (share or 0), 0.6), layer="L4")


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
        confidence="high", impact=0.3)


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
        confidence="high", impact=1.0)


def noisy_measurement(f: Facts) -> Finding | None:
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
        confidence="high" if cv is not None and cv >= 2 * NOISY_CV else "medium", impact=0.15)


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
    """Router health from ``extra.router`` (workloads.router_health: gini / gini_max, load_cv /
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
        confidence="medium", impact=min(max(g or 0, (cv or 0) / 2) * 0.5, 0.4))


RUN_RULES = (parity_failure, launch_bound, syncs_in_step, host_device_copies,
             decode_below_bandwidth_roof, throttling, noisy_measurement, expert_imbalance)
