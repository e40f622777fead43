"""Serving load-test figures from per-request token timestamps. Pure Python, torch-free.

Definitions (times in ms, measured from each request's scheduled arrival):
  TTFT   first output token time - arrival (queueing + prefill)
  TPOT   (last token time - first token time) / (output tokens - 1), per request
  ITL    every gap between consecutive output tokens of a request, pooled over requests
  E2E    last token time - arrival
  output tokens/s   output tokens of completed requests / makespan (first arrival to last
                    completion); request throughput likewise in requests/s
  arrival / completion rate   (n - 1) / (last - first) arrival (completion) time: the
                    realized offered load and what the engine kept up with; the knee compares
                    these two, so a short bounded run's start-up and tail do not fake a knee
  goodput           completed requests meeting the SLO (TTFT <= slo_ttft_ms and TPOT <=
                    slo_tpot_ms) per second of makespan; slo_attainment is their share of
                    all requests offered (requests cut off by the time bound count as misses)
Percentiles are p50/p90/p99 by linear interpolation between closest ranks; an empty sample
gives None ("n/a"), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workloads.stats import percentile

KNEE_EFFICIENCY = 0.9  # achieved / offered request rate below this = saturated


@dataclass
class RequestTiming:
    arrival_s: float
    prompt_len: int
    max_new: int
    token_times_s: list[float] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return len(self.token_times_s) >= self.max_new


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "n": 0}
    ordered = sorted(values)
    return {"p50": percentile(ordered, 0.5), "p90": percentile(ordered, 0.9),
            "p99": percentile(ordered, 0.99), "mean": sum(ordered) / len(ordered),
            "n": len(ordered)}


def rate_between(times: list[float]) -> float | None:
    """Events per second between the first and the last event ((n-1) intervals)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def summarize_load(requests: list[RequestTiming], offered_rate: float, slo_ttft_ms: float,
                   slo_tpot_ms: float) -> dict[str, Any]:
    completed = [r for r in requests if r.finished and r.token_times_s]
    ttft = [(r.token_times_s[0] - r.arrival_s) * 1e3 for r in completed]
    e2e = [(r.token_times_s[-1] - r.arrival_s) * 1e3 for r in completed]
    tpot: list[float | None] = []
    itl: list[float] = []
    for r in completed:
        gaps = [(b - a) * 1e3 for a, b in zip(r.token_times_s, r.token_times_s[1:], strict=False)]
        itl += gaps
        tpot.append(sum(gaps) / len(gaps) if gaps else None)
    good = sum(1 for t, p in zip(ttft, tpot, strict=True)
               if t <= slo_ttft_ms and (p is None or p <= slo_tpot_ms))
    makespan = None
    if completed:
        makespan = max(r.token_times_s[-1] for r in completed) - min(r.arrival_s
                                                                     for r in requests)
    output_tokens = sum(len(r.token_times_s) for r in completed)
    arrivals = sorted(r.arrival_s for r in requests)
    completions = sorted(r.token_times_s[-1] for r in completed)

    def per_second(amount: float) -> float | None:
        return amount / makespan if makespan else None

    return {
        "offered_rate_rps": offered_rate,
        "requests": len(requests), "completed": len(completed),
        "ttft_ms": distribution(ttft),
        "tpot_ms": distribution([p for p in tpot if p is not None]),
        "itl_ms": distribution(itl),
        "e2e_ms": distribution(e2e),
        "makespan_s": makespan,
        "output_tokens": output_tokens,
        "output_tokens_per_s": per_second(output_tokens),
        "request_throughput_rps": per_second(len(completed)),
        "goodput_rps": per_second(good),
        "arrival_rate_rps": rate_between(arrivals),
        "completion_rate_rps": rate_between(completions),
        "slo_attainment": good / len(requests) if requests else None,
        "slo": {"ttft_ms": slo_ttft_ms, "tpot_ms": slo_tpot_ms},
    }


def find_knee(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The knee of the throughput curve: the first offered rate (in increasing order) whose
    completion rate falls below KNEE_EFFICIENCY of its realized arrival rate, i.e. where the
    engine stopped keeping up and queues grew. Points are ``summarize_load`` outputs."""
    ordered = sorted(points, key=lambda p: p["offered_rate_rps"])
    best = max((p["request_throughput_rps"] for p in ordered
                if p.get("request_throughput_rps") is not None), default=None)
    previous = None
    for point in ordered:
        arrived, completed = point.get("arrival_rate_rps"), point.get("completion_rate_rps")
        if arrived is None or completed is None:
            continue
        if completed < KNEE_EFFICIENCY * arrived:
            return {"knee_rate_rps": point["offered_rate_rps"],
                    "last_sustained_rate_rps": previous, "max_throughput_rps": best,
                    "reason": f"completions {completed:.3g}/s < {KNEE_EFFICIENCY:.0%} of "
                              f"arrivals {arrived:.3g}/s at offered {point['offered_rate_rps']:g}"}
        previous = point["offered_rate_rps"]
    return {"knee_rate_rps": None, "last_sustained_rate_rps": previous,
            "max_throughput_rps": best,
            "reason": "not reached: completions kept up with arrivals at every rate tried"}
