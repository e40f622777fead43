"""The step's speed-of-light budget: the time one step would take if every kernel ran at its
roof (this device's calibrated ceilings when cached, else the spec sheet), against the measured
step, with the gap split by kernel (or class), by idle/launch gaps and by host time, ranked by
the microseconds each could recover.

Data types first (the advice, the report, the JSON export and the app read them); the builder
lives below them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzers.ceilings import Ceilings
from analyzers.grouping import group_mode
from analyzers.layer_choice import has_remedy, layer_for
from profilers.parsers.schema import Category, Col

if TYPE_CHECKING:  # readers of the types (the app, the advice) need not load pandas
    import pandas as pd

    from analyzers.step_timeline import StepTimeline


@dataclass(frozen=True)
class BudgetLine:
    kind: str  # kernel | category | idle | host | unknown
    name: str  # kernel name, category, "idle gaps", "host", "unknown FLOPs/bytes"
    category: str | None
    launches: int | None  # per step
    measured_ns: int  # per step
    sol_ns: int | None  # the same work at its roof; None when its FLOPs/bytes are unknown
    lost_ns: int | None  # measured_ns - sol_ns: what could be recovered; None when unknown
    share_of_step: float | None  # lost_ns / step_ns
    bound: str | None  # memory | compute
    pct_of_roof: float | None  # percent
    remedy: str | None  # a key of analyzers.layer_choice.REMEDY_LAYERS
    layer: str | None  # analyzers.layer_choice.layer_for(remedy, ...) for this run, or None
    why: str  # one sentence: what it moves / computes, at what rate against which roof
    source: str  # inventory | op_shapes | with_flops | ncu | trace (idle / host / unknown lines)


@dataclass(frozen=True)
class SolBudget:
    step_ns: int  # measured wall time of one step (mean over the profiled steps)
    steps: int  # profiled steps the figures are averaged over
    kernel_ns: int  # GPU busy time per step (union of intervals)
    sol_ns: int  # the step at speed of light: sum of the kernels' times at their roofs
    idle_ns: int  # GPU idle between activities inside the step (gaps between steps excluded)
    host_ns: int | None  # host time not overlapped with GPU work (before the step's first GPU
    # activity and after its last), where known; step_ns = kernel_ns + idle_ns + host_ns
    coverage: float | None  # share of kernel time whose FLOPs and bytes are known
    ceilings_source: str  # measured | spec
    device_name: str | None
    lines: tuple[BudgetLine, ...]  # ranked by lost_ns, largest first
    notes: tuple[str, ...] = ()


# ---- the builder ------------------------------------------------------------------------

# What each remedy (analyzers.layer_choice.REMEDY_LAYERS key) does, for reports and the app.
REMEDY_TEXT = {
    "precision": "TF32 / lower-precision math",
    "memory_layout": "fused projections, static KV cache",
    "attention_kernel": "a better attention kernel (for decode: split-KV flash decoding)",
    "cuda_graphs": "CUDA graphs (one launch per step)",
    "compile_fusion": "torch.compile fusion",
    "fewer_kernels": "fewer, larger kernels (fusion): each kernel boundary costs even in a graph",
    "gemv": "a bandwidth-tuned GEMV",
    "fp8_weights": "FP8 weights (half the bytes, twice the tensor roof)",
    "fp8_kv": "an FP8 KV cache (half the KV bytes)",
    "paged_kv": "a paged KV cache",
    "speculative": "speculative decoding",
    "grouped_experts": "grouped-GEMM experts",
}
# Remedies that can still help with their layer on (a better kernel, more fusion); the others
# are switches: once on, they have nothing more to give.
_OPEN_ENDED = frozenset({"attention_kernel", "compile_fusion", "fewer_kernels"})
NEAR_ROOF_PCT = 70.0  # a kernel at this share of its roof gains little from a better kernel
UNKNOWN_NAME = "unknown FLOPs/bytes"


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _dur(ns: float) -> str:
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _remedies(category: str | None, bound: str | None, pct: float | None,
              precision: str | None) -> tuple[str, ...]:
    """What addresses a kernel's lost time, in order of preference (REMEDY_LAYERS keys)."""
    near = pct is not None and pct >= NEAR_ROOF_PCT
    if category == Category.ATTENTION:
        return ("fp8_kv",) if near and bound == "memory" else ("attention_kernel",)
    if category == Category.GEMM:
        if precision == "fp32":
            return ("precision",)
        if precision == "fp8":
            return ()
        if bound == "memory" and not near:
            return ("gemv", "fp8_weights")
        return ("fp8_weights",)
    if category in (Category.ELEMENTWISE, Category.NORM, Category.REDUCTION):
        return ("compile_fusion",)
    if category == Category.MOE_DISPATCH:
        return ("grouped_experts",)
    return ()


def _choose(remedies: Iterable[str], workload: str | None, layers: Sequence[str],
            device_kind: str | None) -> tuple[str | None, str | None]:
    """(remedy, layer): the first remedy with a layer this run can still add; else the first
    remedy with no layer. An artifact from elsewhere (no workload) gets no layer: our layers
    apply to our workloads only."""
    remedies = list(remedies)
    if workload:  # a switch the run already has is no remedy (an FP8 run told "FP8 weights");
        # a better kernel or more fusion can still help where its layer is on
        remedies = [r for r in remedies if r in _OPEN_ENDED or not has_remedy(r, layers)]
        for remedy in remedies:
            layer = layer_for(remedy, workload, layers, device_kind)
            if layer is not None:
                return remedy, layer
    return (remedies[0] if remedies else None), None


def _work_text(launches: float, flops: float, nbytes: float, measured: float, sol: float,
               bound: str | None, precision: str | None, ceilings: Ceilings) -> str:
    per = f"{launches:.0f} launches/step" if launches != 1 else "1 launch/step"
    secs = measured * 1e-9
    if bound == "compute":
        peak = ceilings.peak(precision or "bf16")
        rate = _si(flops / secs, "FLOP/s") if secs > 0 else "n/a"
        roof = f"the {precision} {_si(peak, 'FLOP/s')} compute roof" if peak else "the compute roof"
        return (f"{per} compute {_si(flops, 'FLOP')} in {_dur(measured)} ({rate}) against "
                f"{roof}; at the roof {_dur(sol)}")
    rate = _si(nbytes / secs, "B/s") if secs > 0 else "n/a"
    roof = (f"the {_si(ceilings.dram_bw, 'B/s')} memory roof" if ceilings.dram_bw
            else "the memory roof")
    return (f"{per} move {_si(nbytes, 'B')} in {_dur(measured)} ({rate}) against {roof}; "
            f"at the roof {_dur(sol)}")


def sol_budget(launches: pd.DataFrame, timeline: StepTimeline, ceilings: Ceilings,
               workload: str | None = None, layers: Sequence[str] = (),
               device_kind: str | None = None, device_name: str | None = None,
               top: int = 10) -> SolBudget:
    """The speed-of-light budget of one step from the per-launch roofline (analyzers.roofline,
    rows aligned with the KernelTable) and the steps' timeline (analyzers.step_timeline).

    Per step = summed over the profiled steps / steps. Kernel lines: the ``top`` kernels by
    time lost, the rest folded by category. A launch of unknown FLOPs or bytes goes to the
    "unknown" line at its measured time (nothing claimed recoverable, never counted as 0)."""
    steps = max(timeline.steps, 1)
    inside = timeline.in_step
    dur = launches[Col.DUR_NS].to_numpy(dtype="float64")
    measured = timeline.inside_ns.astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(dur > 0, measured / dur, 0.0)  # the part of a launch inside its step
    sol = launches["sol_ns"].to_numpy(dtype="float64") * scale
    known = inside & ~np.isnan(sol)
    unknown = inside & np.isnan(sol)
    codes = np.asarray(launches[Col.NAME].array.codes, dtype=np.int64)
    names = np.asarray(launches[Col.NAME].array.categories, dtype=object)
    groups = len(names)

    def per_name(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=np.where(mask, values, 0.0), minlength=groups)

    k_measured = per_name(measured, known)
    k_sol = per_name(sol, known)
    k_count = np.bincount(codes[known], minlength=groups)
    k_flops = per_name(launches[Col.FLOPS].to_numpy(dtype="float64") * scale, known)
    k_bytes = per_name(launches[Col.DRAM_BYTES].to_numpy(dtype="float64") * scale, known)
    bound_codes = np.asarray(launches["bound"].array.codes, dtype=np.int64)
    prec_codes = np.asarray(launches["precision"].array.codes, dtype=np.int64)
    cost_codes = np.asarray(launches[Col.COST_SOURCE].array.codes, dtype=np.int64)
    cat = launches[Col.CATEGORY].astype("category")
    cat_codes = np.asarray(cat.array.codes, dtype=np.int64)
    sel = known
    k_bound = group_mode(codes[sel], bound_codes[sel], measured[sel], groups)
    k_prec = group_mode(codes[sel], prec_codes[sel], measured[sel], groups)
    k_cost = group_mode(codes[sel], cost_codes[sel], measured[sel], groups)
    k_cat = group_mode(codes[inside], cat_codes[inside], measured[inside], groups)
    bounds = list(launches["bound"].array.categories)
    precs = list(launches["precision"].array.categories)
    costs = list(launches[Col.COST_SOURCE].array.categories)
    cats = list(cat.array.categories)

    def label(values: list[str], code: int) -> str | None:
        return values[code] if code >= 0 else None

    lines: list[BudgetLine] = []
    notes: list[str] = list(timeline.notes)
    step_ns = timeline.window_ns / steps
    lost = np.maximum(k_measured - k_sol, 0.0)
    above = int(((k_measured < k_sol) & (k_count > 0)).sum())
    ranked = [int(i) for i in np.argsort(-lost, kind="stable") if k_count[i] > 0]
    context = (workload, layers, device_kind)

    def line(kind: str, name: str, category: str | None, count: float, meas: float,
             sol_t: float, bound: str | None, precision: str | None, source: str,
             why: str, remedies: tuple[str, ...]) -> BudgetLine:
        pct = sol_t / meas * 100.0 if meas > 0 else None
        remedy, layer = _choose(remedies, *context)
        measured_ns, sol_ns = int(round(meas / steps)), int(round(sol_t / steps))
        lost_ns = max(measured_ns - sol_ns, 0)  # the printed figures add up
        return BudgetLine(
            kind=kind, name=name, category=category, launches=int(round(count / steps)),
            measured_ns=measured_ns, sol_ns=sol_ns, lost_ns=lost_ns,
            share_of_step=lost_ns / step_ns if step_ns > 0 else None, bound=bound,
            pct_of_roof=pct, remedy=remedy, layer=layer, why=why, source=source)

    for i in ranked[:top]:
        bound, prec = label(bounds, k_bound[i]), label(precs, k_prec[i])
        category = label(cats, k_cat[i])
        pct = k_sol[i] / k_measured[i] * 100.0 if k_measured[i] > 0 else None
        why = _work_text(k_count[i] / steps, k_flops[i] / steps, k_bytes[i] / steps,
                         k_measured[i] / steps, k_sol[i] / steps, bound, prec, ceilings)
        lines.append(line("kernel", str(names[i]), category, k_count[i], k_measured[i],
                          k_sol[i], bound, prec, label(costs, k_cost[i]) or "trace", why,
                          _remedies(category, bound, pct, prec)))
    rest = np.array(ranked[top:], dtype=np.int64)
    if len(rest):
        rest_cat = k_cat[rest]
        for c in np.unique(rest_cat):
            members = rest[rest_cat == c]
            meas = float(k_measured[members].sum())
            sol_t = float(np.minimum(k_sol, k_measured)[members].sum())
            weights = np.bincount(np.maximum(k_bound[members], 0) + (k_bound[members] < 0) * 2,
                                  weights=k_measured[members], minlength=3)
            bound = bounds[int(np.argmax(weights[:2]))] if weights[:2].sum() > 0 else None
            category = label(cats, int(c))
            pct = sol_t / meas * 100.0 if meas > 0 else None
            why = (f"{len(members)} more {category or 'uncategorized'} kernels, "
                   + _work_text(k_count[members].sum() / steps, k_flops[members].sum() / steps,
                                k_bytes[members].sum() / steps, meas / steps, sol_t / steps,
                                bound, label(precs, int(k_prec[members][0])), ceilings))
            lines.append(line("category", f"{category or 'other'} ({len(members)} kernels)",
                              category, float(k_count[members].sum()), meas, sol_t, bound,
                              None, "trace", why, _remedies(category, bound, pct, None)))

    gap_ns, launch_gap = timeline.gap_ns, timeline.launch_gap_ns
    if launch_gap is not None and launch_gap > 0:
        lines.append(line("idle", "launch gaps", None, 0, launch_gap, 0.0, None, None, "trace",
                          "the GPU waits for launches the host issued only after it went idle "
                          f"({_dur(launch_gap / steps)} per step)",
                          ("cuda_graphs", "fewer_kernels")))
        gap_ns -= launch_gap
    if gap_ns > 0:
        per_gap = gap_ns / max(timeline.gap_count, 1)
        lines.append(line("idle", "idle gaps", None, 0, gap_ns, 0.0, None, None, "trace",
                          f"{timeline.gap_count / steps:.0f} gaps between GPU activities per "
                          f"step, {_dur(per_gap)} on average"
                          + ("" if launch_gap is None else ", work already issued"),
                          ("cuda_graphs", "fewer_kernels")))
    if timeline.host_ns > 0:
        lines.append(line("host", "host", None, 0, timeline.host_ns, 0.0, None, None, "trace",
                          "the GPU has no work before the step's first and after its last "
                          "activity while the host runs (Python, input copies, launches)",
                          ("cuda_graphs",)))
    lines.sort(key=lambda ln: -(ln.lost_ns or 0))

    u_measured = per_name(measured, unknown)
    u_total = float(u_measured.sum())
    if u_total > 0:
        top_unknown = np.argsort(-u_measured)[:3]
        named = ", ".join(f"{str(names[i])[:60]} {_dur(u_measured[i] / steps)}"
                          for i in top_unknown if u_measured[i] > 0)
        count = int((u_measured > 0).sum())
        lines.append(BudgetLine(
            kind="unknown", name=UNKNOWN_NAME, category=None,
            launches=int(round(unknown.sum() / steps)), measured_ns=int(round(u_total / steps)),
            sol_ns=None, lost_ns=None, share_of_step=None, bound=None, pct_of_roof=None,
            remedy=None, layer=None, source="trace",
            why=(f"{count} kernels without FLOP or byte counts (largest: {named}); kept at "
                 "their measured time in the speed-of-light step")))
        notes.append("kernels of unknown FLOPs/bytes are kept at their measured time: the "
                     "speed-of-light step claims nothing for them")
    if above:
        notes.append(f"{above} kernel(s) ran faster than the roof ("
                     f"{'calibrated' if ceilings.source == 'measured' else 'spec-sheet'} "
                     "ceilings are not the hardware's absolute peak): none of their time is "
                     "counted as lost")
    activity = float(measured[inside].sum())
    if activity > timeline.busy_ns * 1.001:
        notes.append(f"kernels overlap on several streams: the kernel lines sum to "
                     f"{_dur(activity / steps)} per step, GPU busy is "
                     f"{_dur(timeline.busy_ns / steps)}")
    # A kernel already past its (conservative) roof would not slow down to it.
    sol_total = (float(np.minimum(k_sol, k_measured).sum()) + u_total) / steps
    # Summed serially; kernels overlapping on streams would make that exceed the busy time.
    sol_total = min(sol_total, timeline.busy_ns / steps)
    # Rounded per step so that the printed parts add up: step = GPU busy + idle + host.
    step_i, kernel_i = int(round(step_ns)), int(round(timeline.busy_ns / steps))
    idle_i = int(round(timeline.gap_ns / steps))
    host_i = max(step_i - kernel_i - idle_i, 0)
    return SolBudget(
        step_ns=kernel_i + idle_i + host_i, steps=timeline.steps,
        kernel_ns=kernel_i, sol_ns=int(round(sol_total)),
        idle_ns=idle_i, host_ns=host_i,
        coverage=float(k_measured.sum()) / activity if activity > 0 else None,
        ceilings_source=ceilings.source, device_name=device_name or ceilings.device_name,
        lines=tuple(lines), notes=tuple(notes))
