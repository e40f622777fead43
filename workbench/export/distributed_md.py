"""Markdown for multi-rank runs: the ranks of a torchrun session (from result.json) and the
merged-trace analysis (per-rank time, communication share, overlap, stragglers)."""

from __future__ import annotations

from typing import Any

from workbench.export.escape import md_text
from workbench.export.fmt import NA, fmt_bytes, fmt_ns, fmt_num, fmt_pct, md_table


def ranks_section(record: Any) -> list[str]:
    """The '## Ranks' section of a torchrun run's report; [] for a single-process run."""
    dist = record.details.get("distributed") or {}
    ranks = dist.get("ranks") or []
    if not ranks:
        return []
    out = ["## Ranks (torchrun)", "",
           md_text(f"{dist.get('world_size')} ranks, backend {dist.get('backend') or NA}; "
                   f"{dist.get('plan') or 'no parallel plan recorded'}."), ""]
    rows = []
    for r in ranks:
        sent = (r.get("dispatch") or {}).get("sent_rows")
        rows.append([r["rank"], r.get("status") or NA, fmt_num(r.get("latency_median_ms"), 4, "ms"),
                     fmt_bytes(r.get("peak_mem_bytes")), sent if sent is not None else NA,
                     r.get("error") or ""])
    out.append(md_table(["rank", "status", "latency median", "peak memory",
                         "all-to-all rows sent", "error"], rows, align="llrrrl"))
    spread = dist.get("latency_spread_pct")
    if spread is not None:
        out += ["", f"Latency spread across ranks {fmt_num(spread, 3, '%')} "
                f"(slowest: rank {dist.get('slowest_rank')})."]
    return out


def distributed_section(analysis: Any) -> list[str]:
    """The '## Multi-rank analysis' section of a merged trace; [] for one rank."""
    d = getattr(analysis, "distributed", None)
    if d is None:
        return []
    unit = getattr(d, "unit", "rank")
    out = ["## Multi-rank analysis" if unit == "rank" else "## Multi-GPU analysis", "",
           f"{d.world_size} {unit}s, from {md_text(d.source)}."]
    frame = d.per_rank
    if d.source == "gpu kernels":
        rows = [[int(r.rank), int(r.kernels), fmt_ns(r.busy_ns), fmt_ns(r.compute_ns),
                 fmt_ns(r.comm_ns), fmt_pct(r.comm_share), fmt_ns(r.overlap_ns),
                 fmt_ns(r.exposed_comm_ns), fmt_pct(r.overlap_share),
                 fmt_num((d.hta or {}).get(int(r.rank)), 3, "%")]
                for r in frame.itertuples()]
        out += ["", md_table([unit, "kernels", "GPU busy", "compute", "communication",
                              "comm share", "overlapped", "exposed comm", "comm overlapped",
                              "HTA overlap"], rows, align="rrrrrrrrrr")]
    else:
        rows = [[int(r.rank), int(r.ops), fmt_ns(r.wall_ns), fmt_ns(r.compute_ns),
                 fmt_ns(r.comm_ns), fmt_pct(r.comm_share)] for r in frame.itertuples()]
        out += ["", md_table(["rank", "CPU ops", "traced wall", "outside collectives",
                              "in collectives", "comm share"], rows, align="rrrrrr")]
    skew = fmt_num(d.compute_skew_pct, 3, "%")
    if d.straggler_rank is not None:
        out += ["", f"Straggler: {unit} {d.straggler_rank} (compute skew {skew}: its peers wait "
                "for it inside the collectives)."]
    else:
        out += ["", f"No straggler (compute skew {skew})."]
    out += [f"_{md_text(note)}_" for note in d.notes]
    return out
