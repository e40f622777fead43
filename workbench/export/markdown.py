"""Markdown reports: a stored run (with its analysis) and a standalone artifact analysis.

Reports stand on their own: header, environment, metrics with spread, parity, telemetry, GPU
time by category and the top kernels. Missing values print as "n/a".
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from analyzers.run_analysis import RunAnalysis
from sessions.records import Metrics, RunRecord
from workbench.export.advice_md import advice_section
from workbench.export.distributed_md import distributed_section, ranks_section
from workbench.export.escape import md_text
from workbench.export.fmt import (
    NA,
    fmt_bytes,
    fmt_ns,
    fmt_num,
    fmt_pct,
    fmt_rate,
    md_table,
    shorten,
)
from workbench.export.ops_md import cpu_ops_by_gpu_time_section
from workbench.export.regions_md import regions_section
from workbench.export.roofline_md import budget_section, roofline_section
from workloads.spec import RunSpec, replays_kernels


def _when(ts: float | None) -> str:
    return NA if ts is None else _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _report_title(record: RunRecord) -> str:
    spec = record.spec
    if spec is None:  # an analysis: no workload, preset or layers: name what was analyzed
        inputs = [str(p).rsplit("/", 1)[-1] for p in record.inputs]
        return md_text(f"analysis of {', '.join(inputs) or 'artifacts'}"
                       + (f" ({record.artifact_format})" if record.artifact_format else ""))
    return md_text(f"{spec.workload}/{spec.preset} [{','.join(spec.layers)}]")


def render_run_report(record: RunRecord, analysis: RunAnalysis | None,
                      figures: dict[str, str] | None = None) -> str:
    """``figures``: figure name (roofline, budget) -> the SVG's path relative to the report."""
    spec = record.spec or RunSpec(workload="", preset="", layers=[], profiler="")
    out = [f"# aiperf-workbench report — {_report_title(record)}", ""]
    out.append(md_table(["", ""], [
        ["session", record.id],
        ["status", f"{record.status}" + (f" — {record.error}" if record.error else "")],
        ["started", _when(record.created_at)],
        ["finished", _when(record.finished_at)],
        ["label", record.label or NA],
    ], align="ll"))
    out += ["", "## Run", ""]
    out.append(md_table(["setting", "value"], [
        ["workload", spec.workload], ["preset", spec.preset],
        ["layers", ", ".join(spec.layers)], ["profiler", record.profiler],
        ["repeats (warm-up)", f"{spec.repeat} ({spec.warmup})" if record.spec else NA],
        ["device requested", spec.device],
        ["parameter overrides", ", ".join(f"{k}={v}" for k, v in spec.params.items()) or "none"],
    ], align="ll"))
    out += ["", "## Environment", "", _env_table(dict(record.env))]
    world = (record.details.get("distributed") or {}).get("world_size")
    out += ["", "## Metrics", "", _metrics_table(dict(record.metrics), int(world or 1))
            if record.spec is not None or record.metrics
            else "n/a (an analysis of another program's artifacts: nothing was timed here)"]
    if replays_kernels(record.profiler):
        out += ["", f"Timed under {record.profiler}, which serializes (and for ncu "
                "replays) every kernel: the latency above is the profiler's, not the model's. "
                "A --profiler timer run of the same layers measures speed."]
    mem_source = record.details.get("peak_mem_source")
    if mem_source:
        out += ["", f"Peak memory is the {mem_source}."]
    out += ["", "## Parity against L0", "", _parity_text(dict(record.parity))]
    router = record.details.get("router")
    if router:
        out += ["", "## Router health", "", _router_text(router,
                                                         record.details.get("routing_parity"))]
    layers = record.layers_applied
    if layers:
        out += ["", "## Layers", "", md_table(["layer", "applied", "note"], [
            [li.get("name"), "yes" if li.get("applied") else "no", li.get("reason") or ""]
            for li in layers], align="lll")]
    scope = record.details.get("profile_scope")
    if scope:
        out += ["", "## Profiled scope", "", md_text(scope.get("note") or scope.get("what") or NA)]
    ranks = ranks_section(record)
    out += ["", *ranks] if ranks else []
    out += ["", "## Telemetry (NVML)", "", _telemetry_text(record.telemetry)]
    if analysis is not None:
        out += ["", *_analysis_sections(analysis, figures)]
        out += _profiled_vs_timed(analysis, record.metrics or {})
    out += ["", *advice_section(analysis.advice if analysis is not None else [],
                                record.llm_advice)]
    out += ["", "---", "artifacts: " + (md_text(", ".join(f"{k}={v}" for k, v in
                                                          record.artifacts.items())) or "none"), ""]
    return "\n".join(out)


def _profiled_vs_timed(a: RunAnalysis, metrics: Metrics) -> list[str]:
    """The profiler's own cost, stated where it stretched the step: the budget's step comes
    from the profiled steps, the headline latency from timed repeats without the profiler (the
    8B eager step: 86 ms profiled, 26 ms timed)."""
    budget = a.budget
    latency = metrics.get("latency_ms")
    timed = latency.get("median") if isinstance(latency, dict) else None
    if budget is None or not isinstance(timed, (int, float)) or timed <= 0 or not budget.step_ns:
        return []
    profiled_ms = budget.step_ns / 1e6
    if abs(profiled_ms / timed - 1.0) < 0.25:
        return []
    return ["", f"_The profiled step ({profiled_ms:.3g} ms) differs from the timed one "
            f"({timed:.3g} ms median, repeats run without the profiler) by "
            f"{(profiled_ms / timed - 1.0) * 100:+.0f}%: the profiler's own host work (recording "
            "every op) stretches the host-bound parts; the budget's kernel lines hold, its gap "
            "and host lines are the profiled step's, and the advice quotes the timed step._"]


def render_artifact_report(paths: list[str], analysis: RunAnalysis,
                           figures: dict[str, str] | None = None) -> str:
    out = ["# aiperf-workbench analysis", "",
           md_table(["", ""], [["input", ", ".join(paths)], ["format", analysis.source or NA]],
                    align="ll"), ""]
    out += _analysis_sections(analysis, figures)
    out += ["", *advice_section(analysis.advice)]
    return "\n".join(out) + "\n"


def _env_table(env: dict[str, Any]) -> str:
    if not env:
        return "n/a (the run recorded no environment)"
    keys = [("device", "device_name"), ("kind", "device_kind"), ("compute capability", "cc"),
            ("SMs", "sm_count"), ("driver", "driver"), ("CUDA", "cuda"), ("torch", "torch"),
            ("python", "python"), ("CPU threads", "num_threads"), ("platform", "platform")]
    return md_table(["", ""], [[label, env.get(key) if env.get(key) is not None else NA]
                               for label, key in keys], align="ll")


def _metrics_table(m: dict[str, Any], world: int = 1) -> str:
    if not m:
        return "n/a (no metrics: the run did not finish)"
    lat = m.get("latency_ms") or {}
    med, stdev = lat.get("median"), lat.get("stdev")
    cv = (stdev / lat["mean"]) if stdev is not None and lat.get("mean") else None
    rows: list[list[Any]] = [
        [f"{m.get('step') or 'step'} latency median", fmt_num(med, 4, "ms")],
        ["p10 / p90 / p99", " / ".join(fmt_num(lat.get(k), 4) for k in ("p10", "p90", "p99")) + " ms"],
        ["min / max", f"{fmt_num(lat.get('min'), 4)} / {fmt_num(lat.get('max'), 4)} ms"],
        ["stdev (CV)", f"{fmt_num(stdev, 3, 'ms')} ({fmt_pct(cv)})"],
        ["repeats measured", lat.get("n") if lat.get("n") is not None else NA],
        ["tokens per step", fmt_num(m.get("tokens_per_step"), 4)],
        ["throughput", fmt_num(m.get("tokens_per_s"), 4, "tok/s")],
        ["prefill", f"{fmt_num(m.get('prefill_ms'), 4, 'ms')} ({fmt_num(m.get('prefill_tokens_per_s'), 4, 'tok/s')})"],
        ["TTFT / TPOT", f"{fmt_num(m.get('ttft_ms'), 4, 'ms')} / {fmt_num(m.get('tpot_ms'), 4, 'ms')}"],
        ["peak memory", fmt_bytes(m.get("peak_mem_bytes"))],
        ["FLOPs / bytes per step" + (f" (whole model: the {world} ranks share it)" if world > 1 else ""),
         f"{fmt_num(m.get('flops_per_step'), 4)} / {fmt_bytes(m.get('bytes_per_step'))}"],
        ["achieved" + (f" (all {world} GPUs together)" if world > 1 else ""), f"{fmt_rate((m.get('achieved_tflops') or 0) * 1e12 if m.get('achieved_tflops') is not None else None, 'FLOP/s')}, "
                     f"{fmt_rate((m.get('achieved_gb_s') or 0) * 1e9 if m.get('achieved_gb_s') is not None else None, 'B/s')}"],
    ]
    return md_table(["metric", "value"], rows, align="lr")


def _parity_text(p: dict[str, Any]) -> str:
    if not p:
        return "n/a"
    if p.get("skipped"):
        return f"skipped: {p['skipped']}"
    verdict = {True: "ok", False: "FAILED"}.get(bool(p["ok"]), NA) \
        if isinstance(p.get("ok"), bool) else NA
    tol = p.get("tolerance")
    tol = tol if isinstance(tol, dict) else {"max_rel_err": tol}
    return md_table(["", ""], [
        ["verdict", verdict], ["reference", p.get("reference") or "L0"],
        ["precision", p.get("precision") or NA],
        ["max relative error (tolerance)",
         f"{fmt_num(p.get('max_rel_err'), 3)} ({fmt_num(tol.get('max_rel_err'), 3)})"],
        ["top-1 token agreement (minimum)",
         f"{fmt_pct(p.get('top1_agreement'))} ({fmt_pct(tol.get('min_top1_agreement'))})"],
        ["tokens compared", p.get("tokens_compared", NA)],
    ], align="ll")


def _router_text(r: dict[str, Any], routing: dict[str, Any] | None) -> str:
    """MoE router health (workloads.router_health) against its targets."""
    if not r.get("available"):
        return f"n/a ({r.get('reason', 'not recorded')})"
    met, targets = r.get("met") or {}, r.get("targets") or {}

    def verdict(key: str) -> str:
        value = met.get(key)
        return {True: "met", False: "NOT met"}[value] if isinstance(value, bool) else NA

    rows = [
        ["experts / top-k / gating", f"{r.get('experts')} / {r.get('top_k')} / {r.get('gating')}"],
        ["tokens routed (x MoE layers)", f"{r.get('tokens_routed')} (x {r.get('moe_layers')})"],
        ["balance loss (1.0 = uniform)", fmt_num(r.get("balance_loss"), 4)],
        ["aux loss (coefficient)", f"{fmt_num(r.get('aux_loss'), 3)} ({fmt_num(r.get('aux_loss_coef'), 3)})"],
        ["router entropy (share of ln E)", f"{fmt_num(r.get('router_entropy'), 4)} nats ({fmt_pct(r.get('router_entropy_norm'))})"],
        ["tokens per expert min / max (mean)",
         f"{fmt_num(r.get('tokens_per_expert_min'), 6)} / {fmt_num(r.get('tokens_per_expert_max'), 6)} "
         f"({fmt_num(r.get('tokens_per_expert_mean'), 4)})"],
        [f"Gini, mean / worst layer (target < {targets.get('gini_lt', 0.2)})",
         f"{fmt_num(r.get('gini'), 3)} / {fmt_num(r.get('gini_max'), 3)}: {verdict('gini')}"],
        [f"load std / mean, mean / worst layer (target < {fmt_pct(targets.get('load_cv_lt', 0.1))})",
         f"{fmt_pct(r.get('load_cv'))} / {fmt_pct(r.get('load_cv_max'))}: {verdict('load_cv')}"],
        ["targets (Gini, load spread)", "met" if r.get("targets_met") else "NOT met"],
    ]
    if routing:
        rows.append(["parity routing flips (replayed)",
                     f"{routing.get('flipped')} of {routing.get('token_layer_choices')} choices"])
    return md_table(["", ""], rows, align="ll")


def _telemetry_text(t: dict[str, Any]) -> str:
    if not t or not t.get("available"):
        return f"n/a ({(t or {}).get('reason', 'no telemetry')})"
    return md_table(["", ""], [
        ["samples", f"{t.get('n_samples')} every {fmt_num(t.get('interval_s'), 2, 's')}"],
        ["power mean / max (limit)", f"{fmt_num(t.get('power_w_mean'), 4, 'W')} / {fmt_num(t.get('power_w_max'), 4, 'W')} ({fmt_num(t.get('power_limit_w'), 4, 'W')})"],
        ["energy", fmt_num(t.get("energy_j"), 4, "J")],
        ["SM clock range", f"{fmt_num(t.get('sm_mhz_min'), 4)} – {fmt_num(t.get('sm_mhz_max'), 4)} MHz"],
        ["memory clock range", f"{fmt_num(t.get('mem_mhz_min'), 4)} – {fmt_num(t.get('mem_mhz_max'), 4)} MHz"],
        ["max temperature", fmt_num(t.get("temp_c_max"), 3, "°C")],
        ["mean GPU utilization", fmt_num(t.get("gpu_util_mean"), 3, "%")],
        ["throttling seen", ", ".join(t.get("throttle_reasons") or []) or "none"],
    ], align="ll")


def _analysis_sections(a: RunAnalysis, figures: dict[str, str] | None = None) -> list[str]:
    out: list[str] = distributed_section(a)
    out += [""] if out else []
    if a.cpu_ops is not None and len(a.cpu_ops) and a.kernel_count == 0:
        out += _cpu_ops_section(a)
    if a.kernels is None or a.kernel_count == 0:
        if a.kernels is None:
            out += ["## Kernels", ""]
        out += [f"_{md_text(n)}_" for n in a.notes] + [""]
        return out
    kinds = a.kind_totals()
    kind_text = ", ".join(f"{k} {fmt_ns(v)}" for k, v in sorted(kinds.items()))
    out += ["## GPU time by category", "",
            f"{a.kernel_count} GPU activities, {fmt_ns(a.kernel_total_ns)} in total "
            f"({kind_text}; source: {md_text(a.source)}"
            + (f", device: {md_text(a.device_name)}" if a.device_name else "") + ").", ""]
    if a.categories is not None and len(a.categories):
        out.append(md_table(["category", "count", "time", "share"], [
            [r.category, r.count, fmt_ns(r.total_ns), fmt_pct(r.share)]
            for r in a.categories.itertuples()]))
    if a.top_kernels is not None and len(a.top_kernels):
        out += ["", f"## Top {len(a.top_kernels)} kernels", "",
                md_table(["kernel", "category", "count", "total", "mean", "p99", "share"], align="llrrrrr", rows=[
                    [shorten(str(r.name)), r.category, r.count, fmt_ns(r.total_ns),
                     fmt_ns(r.mean_ns), fmt_ns(r.p99_ns), fmt_pct(r.share)]
                    for r in a.top_kernels.itertuples()])]
    out += cpu_ops_by_gpu_time_section(a)
    if a.temporal is not None:
        out += ["", *_temporal_section(a.temporal)]
    out += ["", *regions_section(a)] if a.regions is not None else []
    if a.roofline is not None and len(a.roofline):
        out += ["", *roofline_section(a, figures)]
    if a.budget is not None:
        out += ["", *budget_section(a, figures)]
    for note in a.notes:
        out += ["", f"_{md_text(note)}_"]
    return out


def _cpu_ops_section(a: RunAnalysis) -> list[str]:
    assert a.cpu_ops is not None
    return ["## Top CPU ops (inclusive wall time)", "",
            md_table(["op", "calls", "total", "mean", "FLOPs"], [
                [shorten(str(r.name)), r.count, fmt_ns(r.total_ns), fmt_ns(r.mean_ns),
                 fmt_num(r.flops, 3)] for r in a.cpu_ops.itertuples()]), ""]


def _temporal_section(t: Any) -> list[str]:
    syncs = ", ".join(f"{s.name} ×{s.count} ({fmt_ns(s.total_ns)})" for s in t.syncs) or (
        "none" if t.sync_count is not None else NA)
    host = {True: "yes", False: "no"}.get(t.host_bound, NA)
    reason = getattr(t, "host_bound_reason", None)
    return ["## Timeline", "", md_table(["", ""], [
        ["window", fmt_ns(t.window_ns)],
        ["GPU busy / idle", f"{fmt_ns(t.busy_ns)} / {fmt_ns(t.idle_ns)} (idle {fmt_pct(t.idle_share)})"],
        *([[f"inside the {t.step_count} profiled step{'s' if t.step_count != 1 else ''}",
            f"{fmt_ns(t.step_busy_ns)} busy of {fmt_ns(t.step_window_ns)} "
            f"(idle {fmt_pct(t.step_idle_share)}; the rest of the window lies between steps)"]]
          if getattr(t, "step_count", None) else []),
        ["gaps between kernels", f"{t.gaps.count}, p50 {fmt_ns(t.gaps.p50_ns)}, p99 {fmt_ns(t.gaps.p99_ns)}, max {fmt_ns(t.gaps.max_ns)}"],
        [f"kernels shorter than {fmt_ns(t.short_threshold_ns)}",
         f"{t.short_kernel_count} ({fmt_pct(t.short_kernel_share)} of kernels, {fmt_pct(t.short_kernel_time_share)} of time)"],
        ["memcpy / memset share", f"{fmt_pct(t.memcpy_share)} / {fmt_pct(t.memset_share)}"],
        ["synchronizations", syncs],
        ["host-bound", host + (f" — {reason}" if reason else "")],
    ], align="ll")]
