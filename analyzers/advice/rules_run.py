"""Advice rules over the timeline of the profiled steps: idle GPU waiting for launches,
synchronizations and host copies inside the steps, and decode's distance from the memory roof.

The steps are those found in the trace (analyzers.advice.steps): time between profiled steps
(the harness's synchronize and timing, a cold first step) is not the step's. Without steps the
rules fall back to the whole window and say so."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from analyzers.advice.effect import fmt_us, impact, layer_list, recoverable_text
from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding
from analyzers.distinct import isin_mask, str_mask
from profilers.parsers.schema import Col, Kind

LAUNCH_BOUND_IDLE_SHARE = 0.30
SHORT_KERNEL_SHARE = 0.50
DECODE_ROOF_FRACTION = 0.50
HOST_COPY_SHARE = 0.03
SYNC_MIN_COUNT = 2

_HOST_COPY_RE = re.compile(r"HtoD|DtoH|Host.?to.?Device|Device.?to.?Host|Pageable|Pinned", re.I)
_PAGEABLE_RE = re.compile(r"Pageable", re.I)
# Without steps found in the trace, a lone cudaDeviceSynchronize is the measurement fence.
_FENCE = "cudaDeviceSynchronize"


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value else None


def _window_idle(f: Facts) -> dict[str, Any] | None:
    """Idle figures of the median profiled step, else of the whole window (no steps found)."""
    tl, t = f.timeline, f.temporal
    if tl is not None:
        i = tl.median_step
        wall, idle, wait = tl.wall_ns[i], tl.idle_ns[i], tl.launch_wait_ns[i]
        where = (f"the median of {tl.steps} profiled steps ({tl.method}"
                 + (f"; step {tl.cold_steps[0] + 1} is cold, "
                    f"{tl.wall_ns[tl.cold_steps[0]] / 1e6:.3g} ms" if tl.cold_steps else "") + ")")
        return {"idle_share": idle / wall if wall else None,
                "wait_share": wait / idle if idle and tl.host_spans is not None else None,
                "busy_ns": tl.busy_ns[i], "wall_ns": wall, "where": where, "of": "the step",
                "idle_ns": idle}
    if t is None or t.idle_share is None:
        return None
    gap_share = (t.launch_bound_gap_ns / t.gaps.total_ns
                 if t.launch_bound_gap_ns is not None and t.gaps.total_ns else None)
    busy = t.busy_ns / f.steps if f.steps else None
    return {"idle_share": t.idle_share, "wait_share": gap_share, "busy_ns": busy,
            "wall_ns": t.window_ns, "where": "the whole profiled window (no repeating steps "
            "found in the trace, so gaps between steps count too)",
            "of": "the profiled window", "idle_ns": t.idle_ns}


def launch_bound(f: Facts) -> Finding | None:
    w, t = _window_idle(f), f.temporal
    if w is None or w["idle_share"] is None:
        return None
    idle_share, wait_share = w["idle_share"], w["wait_share"]
    short = t.short_kernel_share if t is not None else None
    if idle_share < LAUNCH_BOUND_IDLE_SHARE:
        return None
    if wait_share is not None and wait_share >= 0.5:
        how, sure = "idle gaps end with work the CPU issued only after the GPU went idle", "high"
    elif wait_share is None and (short or 0) >= SHORT_KERNEL_SHARE:
        how, sure = "no runtime events; many short kernels with the GPU mostly idle", "medium"
    else:
        return None
    evidence = [Evidence(f"GPU idle share of {w['of']}", idle_share, LAUNCH_BOUND_IDLE_SHARE,
                         f"{f.source}, {w['where']}", "share")]
    if wait_share is not None:
        evidence.append(Evidence("idle time waiting for the next launch", wait_share, 0.5,
                                 f.source, "share"))
    if short is not None and t is not None:
        evidence.append(Evidence(f"kernels shorter than {t.short_threshold_ns / 1000:.0f} us",
                                 short, SHORT_KERNEL_SHARE, f.source, "share",
                                 ">=" if short >= SHORT_KERNEL_SHARE else "<"))
    us = None
    if w["busy_ns"] is not None and f.step_ns:
        # the step could shrink to the GPU's busy time, less the part not waiting on launches
        us = max(f.step_ns - w["busy_ns"], 0.0) * (wait_share if wait_share is not None else 0.7) / 1e3
        evidence.append(Evidence("GPU busy per step", round(w["busy_ns"] / 1e3, 1), None,
                                 f.source, "us", ""))
    layers = layer_list(f, [("cuda_graphs", "capture the step in a CUDA graph, one launch "
                             "replays every kernel"),
                            ("compile_fusion", "torch.compile fuses kernels, so fewer launches"),
                            ("grouped_experts", "one grouped GEMM per MoE layer instead of a "
                             "launch per expert")])
    by_hand = ("capture the step in a CUDA graph (torch.cuda.CUDAGraph, or torch.compile(mode="
               "'reduce-overhead')), so one launch replays every kernel, and cut launches by "
               "fusing small kernels.")
    if layers:
        action = "; ".join(f"{what} (layer {name})" for name, what in layers) + "."
    elif not f.workload:
        action = by_hand[0].upper() + by_hand[1:]
    else:
        action = (f"No workbench layer left for this ({', '.join(f.layers) or 'this stack'}"
                  f"{'; the ' + f.workload + ' workload has no CUDA-graph layer' if f.workload != 'dense' else ''}): "
                  + by_hand)
    return Finding(
        rule="launch_bound",
        finding=f"The GPU is idle {idle_share:.0%} of {w['of']} waiting for the CPU to launch "
                f"work ({how}).",
        evidence=tuple(evidence), action=action,
        expected_effect="One launch per step instead of one per kernel; decode steps gain most.",
        confidence=sure, impact=impact(f, us, idle_share * (wait_share or 0.7)),
        layer=layers[0][0] if layers else None, recoverable_us=us,
        recoverable=recoverable_text(f, us, "the step less the GPU's busy time, times the share "
                                     "of idle time spent waiting for a launch",
                                     w["idle_ns"] * (wait_share if wait_share is not None else 0.7)))


def _step_syncs(f: Facts) -> tuple[int, int, list[str], str] | None:
    """(syncs in the steps, blocked ns, names, how they were told apart) or None."""
    tl, t = f.timeline, f.temporal
    if tl is not None and tl.host_spans is not None:
        calls = tl.in_step_syncs()
        names = Counter(c.name for c in calls)
        fences = len(tl.syncs) - len(calls)
        how = (f"inside the host spans of {tl.steps} profiled steps"
               + (f"; {fences} between steps (the harness's synchronize) left out" if fences else ""))
        return (len(calls), sum(c.dur_ns for c in calls),
                [f"{n} x{c}" for n, c in names.most_common(4)], how)
    if t is None or not t.syncs:
        return None
    step_syncs = [s for s in t.syncs if s.name != _FENCE]
    fences = sum(s.count for s in t.syncs if s.name == _FENCE)
    count = sum(s.count for s in step_syncs) + max(fences - 1, 0)
    return (count, sum(s.total_ns for s in step_syncs),
            [f"{s.name} x{s.count}" for s in t.syncs[:4]],
            "in the profiled window (no steps found; one cudaDeviceSynchronize taken as the fence)")


def syncs_in_step(f: Facts) -> Finding | None:
    found = _step_syncs(f)
    if found is None:
        return None
    count, blocked_ns, names, how = found
    if count < SYNC_MIN_COUNT:
        return None
    us = f.us(blocked_ns)
    per_step = count / f.steps if f.steps else None
    evidence = [Evidence("blocking synchronizations in the steps", count, SYNC_MIN_COUNT,
                         f"{f.source}, {how}")]
    if per_step is not None:
        evidence.append(Evidence("per step", round(per_step, 1), None, f.source, comparison=""))
    evidence.append(Evidence("host time blocked in them per step",
                             round(us, 1) if us is not None else None, None, f.source, "us", ""))
    moe = f.layer("grouped_experts")
    graphs = f.layer("cuda_graphs")
    return Finding(
        rule="syncs_in_step",
        finding=f"The host waits for the GPU {count} times inside the profiled steps "
                f"({', '.join(names)}).",
        evidence=tuple(evidence),
        action="Remove .item(), .cpu(), .tolist(), torch.nonzero / boolean-mask indexing and "
               "prints from the step; keep decisions on the device. "
               "torch.cuda.set_sync_debug_mode('warn') points at each one."
               + (f" The MoE per-expert loop syncs on every expert: layer {moe} dispatches "
                  "without them." if moe else ""),
        expected_effect="The CPU runs ahead and keeps the launch queue full"
                        + (f"; a prerequisite for CUDA graphs ({graphs})." if graphs else "."),
        confidence="high" if count >= 10 else "medium",
        impact=impact(f, us, min(0.05 + count / 1000, 0.6)), layer=moe, recoverable_us=us,
        recoverable=recoverable_text(f, us, "at least the host time blocked in them (each also "
                                     "drains the launch queue)", blocked_ns))


def host_device_copies(f: Facts) -> Finding | None:
    if not f.has_kernels:
        return None
    kt = f.kernels
    assert kt is not None
    is_copy = isin_mask(kt[Col.KIND], (Kind.MEMCPY,))
    if not is_copy.any():
        return None
    host = is_copy & str_mask(kt[Col.NAME], _HOST_COPY_RE.search)
    host_ns = int(kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)[host].sum())
    pageable = int((is_copy & str_mask(kt[Col.NAME], _PAGEABLE_RE.search)).sum())
    t = f.temporal
    activity = t.activity_ns if t is not None and t.activity_ns else f.total_ns
    share = host_ns / activity if activity else 0.0
    if share < HOST_COPY_SHARE:
        return None
    us = f.us(host_ns)
    layer = f.layer("memory_layout")
    return Finding(
        rule="host_device_copies",
        finding=f"Host-device copies inside the profiled steps take {share:.0%} of GPU activity "
                f"({int(host.sum())} copies, {pageable} from pageable memory).",
        evidence=(Evidence("host<->device copy share of GPU activity", share, HOST_COPY_SHARE,
                           f.source, "share"),
                  Evidence("pageable copies", pageable, 0, f.source, comparison=">")),
        action="Keep inputs and the KV cache on the device; where a copy is needed, copy from "
               "pinned memory with .to(device, non_blocking=True) so it overlaps compute"
               + (f" (layer {layer}: pinned host buffers)." if layer else "."),
        expected_effect="Pageable copies stage through a bounce buffer and block the host; pinned "
                        "async copies run at full PCIe/NVLink rate and overlap kernels.",
        confidence="high" if pageable else "medium", impact=impact(f, us, share), layer=layer,
        recoverable_us=us, recoverable=recoverable_text(f, us, "the copies' GPU time", host_ns))


_DECODE_REMEDIES = [("cuda_graphs", "remove the launch gaps"),
                    ("compile_fusion", "fuse the small kernels"),
                    ("memory_layout", "a static KV cache and fused projections"),
                    ("gemv", "a bandwidth-tuned M=1 GEMV"),
                    ("fp8_weights", "FP8 weights halve the bytes")]


def decode_below_bandwidth_roof(f: Facts) -> Finding | None:
    if f.step != "decode" or f.device_kind != "cuda" or f.ceilings is None or not f.ceilings.dram_bw:
        return None
    achieved = num(f.metrics.get("achieved_gb_s")) if f.timed else None
    how, kernels_only = "bytes per step / step latency", False
    if achieved is None:
        agg = f.roofline_aggregate
        if agg is None or agg.achieved_bytes_per_s is None or (agg.bytes_time_coverage or 0) < 0.5:
            return None  # under ncu/nsys the latency is no timing: no achieved bandwidth
        achieved, how = agg.achieved_bytes_per_s / 1e9, "the kernels' bytes / their run time"
        kernels_only = True  # the gaps between kernels do not count here
    roof = f.ceilings.dram_bw / 1e9
    frac = achieved / roof
    if frac >= DECODE_ROOF_FRACTION:
        return None
    bytes_per_step = num(f.metrics.get("bytes_per_step"))
    us, total_ns, basis = None, None, "the step less its time at the memory roof (bytes / roof)"
    if kernels_only:
        total_ns = (f.total_ns or 0) * (1 - frac)
        us, basis = f.us(total_ns), "the kernels' time less their bytes at the memory roof"
    elif bytes_per_step and f.step_ns:
        at_roof_ns = bytes_per_step / f.ceilings.dram_bw * 1e9
        us = max(f.step_ns - at_roof_ns, 0.0) / 1e3
        basis = f"the step less its {fmt_us(at_roof_ns / 1e3)} at the memory roof (bytes / roof)"
    remedies = [(r, w) for r, w in _DECODE_REMEDIES
                if not (r == "gemv" and f.has("fp8_weights"))  # the FP8 layer has its GEMV
                and not (r == "cuda_graphs" and kernels_only)]  # launch gaps are not counted
    layers = layer_list(f, remedies)
    if layers:
        action = ("Decode reads every weight once per token: "
                  + "; ".join(f"{what} (layer {name})" for name, what in layers) + ".")
    else:
        w = _window_idle(f)
        idle = w["idle_share"] if w is not None else None
        action = ("Every workbench layer for this is on (" + ", ".join(f.layers) + "); "
                  + (f"the GPU waits for launches {idle:.0%} of the step: see the launch-bound "
                     "finding." if idle is not None and idle >= LAUNCH_BOUND_IDLE_SHARE else
                     "the rest is in the kernels themselves: see the kernels far below their "
                     "roof and the speed-of-light budget."))
    return Finding(
        rule="decode_below_bandwidth_roof",
        finding=(f"Decode's kernels move {achieved:,.0f} GB/s while they run" if kernels_only
                 else f"Decode reaches {achieved:,.0f} GB/s")
                + f", {frac:.0%} of the {roof:,.0f} GB/s memory roof ({f.ceilings.source} "
                f"ceiling; achieved from {how}).",
        evidence=(Evidence("achieved bandwidth", round(achieved, 1), None, f.source, "GB/s", ""),
                  Evidence("share of the DRAM roof", frac, DECODE_ROOF_FRACTION, f.source, "share", "<"),
                  Evidence("DRAM roof", round(roof, 1), None,
                           f"{f.ceilings.source} ceilings ({f.ceilings.device_name})", "GB/s", "")),
        action=action,
        expected_effect=f"Up to {1 / max(frac, 1e-3):.1f}x decode throughput at the roof.",
        confidence="medium", impact=impact(f, us, min(1 - frac, 0.9) * 0.5),
        layer=layers[0][0] if layers else None, recoverable_us=us,
        recoverable=recoverable_text(f, us, basis, total_ns))


RUN_RULES = (launch_bound, syncs_in_step, host_device_copies, decode_below_bandwidth_roof)
