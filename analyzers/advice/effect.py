"""What a fix can recover, in microseconds per step, said with the measurement it rests on;
and the ranking weight that follows from it (the share of the measured step)."""

from __future__ import annotations

from analyzers.advice.facts import Facts


def fmt_us(us: float) -> str:
    return f"{us / 1000:,.2f} ms" if us >= 10_000 else f"{us:,.0f} µs"


def recoverable_text(f: Facts, us: float | None, basis: str,
                     total_ns: float | None = None) -> str:
    """"up to 810 µs per step (16% of the 5.07 ms step, median step latency): <basis>"; without
    a step count, the total over the profiled trace."""
    if us is None:
        if total_ns is not None and total_ns > 0:
            return (f"up to {fmt_us(total_ns / 1e3)} over the profiled trace (its step count is "
                    f"unknown): {basis}")
        return f"n/a (no step time: {f.step_source or 'no timing and no steps in the trace'}): {basis}"
    share = us * 1e3 / f.step_ns if f.step_ns else None
    where = (f" ({share:.0%} of the {f.step_ns / 1e6:.3g} ms step, {f.step_source})"
             if share is not None and f.step_ns else "")
    return f"up to {fmt_us(us)} per {f.per}{where}: {basis}"


def impact(f: Facts, us: float | None, fallback: float) -> float:
    """Ranking weight: the recoverable share of the measured step, else ``fallback``."""
    if us is not None and f.step_ns:
        return max(0.0, min(us * 1e3 / f.step_ns, 1.0))
    return fallback


def layer_list(f: Facts, remedies: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(layer, what it does) for the remedies this run can still take, in order."""
    out: list[tuple[str, str]] = []
    for remedy, what in remedies:
        name = f.layer(remedy)
        if name is not None and all(name != n for n, _ in out):
            out.append((name, what))
    return out
