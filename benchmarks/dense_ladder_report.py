"""The dense ladder's report: which device the results are named after, the issue-20 targets
read off the rows, and the Markdown beside the JSON (benchmarks/dense_ladder.py runs the rows).

A decode row's "share" is its effective bandwidth (analytic bytes per step over the median
step) over the copy bandwidth measured in the same run; a prefill row's is its model FLOP/s
over the bf16 GEMM peak measured in the same run. Missing figures are "n/a", never 0.
"""

from __future__ import annotations

from typing import Any

from workbench.export.ladder_md import render_ladder_markdown

SHARE_TARGETS = {"bf16 decode b1, context 128": 0.85, "bf16 decode b1, context 8192": 0.85,
                 "FP8 decode b1, context 128": 0.75}
FP8_PEAK_TARGET = 0.6  # FP8 stack's serving peak / the bf16 stack's
PREFILL_SHARE_TARGET = 0.80
FP8_LAYERS = ("L5-fp8", "L6-fp8kv")


def device_name(records: list[Any], cuda: bool) -> str:
    """The GPU the rows ran on: any session's env (decode, grid or prefill — with the decode
    rows skipped the file was named "dense_ladder-unknown"), else the device itself."""
    for record in records:
        name = (record.env or {}).get("device_name")
        if name:
            return str(name)
    if cuda:
        try:
            import torch

            return str(torch.cuda.get_device_name(0))
        except Exception:  # no session and no device: say so in the name
            return "unknown"
    return "cpu"


def _decode_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Ladder rows (batch 1, context 128, the preset's max_seq) and grid rows, one shape."""
    rows = [{**row, "context": 128, "batch": 1, "where": "ladder"}
            for row in results.get("ladder", [])]
    return rows + [{**row, "where": "grid"} for row in results.get("grid", [])]


def _fp8(row: dict[str, Any]) -> bool:
    return any(name in (row.get("layers") or []) for name in FP8_LAYERS)


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [r for r in rows if r.get("parity_ok") and r.get("share_of_copy_bw") is not None]
    return max(usable, key=lambda r: r["share_of_copy_bw"], default=None)


def targets_table(results: dict[str, Any]) -> dict[str, Any]:
    """{"rows": [{figure, measured, target, met, session}], "lines": Markdown}."""
    decode = _decode_rows(results)
    out: list[dict[str, Any]] = []

    def add(figure: str, measured: float | None, target: float, higher: bool,
            session: str | None, unit: str = "") -> None:
        met = None if measured is None else (measured >= target if higher
                                             else measured <= target)
        out.append({"figure": figure, "measured": measured, "target": target, "met": met,
                    "better": "higher" if higher else "lower", "unit": unit,
                    "session": session})

    picks = {"bf16 decode b1, context 128": lambda r: not _fp8(r) and r["context"] == 128,
             "bf16 decode b1, context 8192": lambda r: not _fp8(r) and r["context"] == 8192,
             "FP8 decode b1, context 128": lambda r: "L5-fp8" in (r.get("layers") or [])
             and "L6-fp8kv" not in (r.get("layers") or []) and r["context"] == 128}
    best_rows: dict[str, dict[str, Any] | None] = {}
    for figure, pick in picks.items():
        best = _best([r for r in decode if r["batch"] == 1 and pick(r)])
        best_rows[figure] = best
        add(f"{figure}: share of the copy-bandwidth limit",
            best["share_of_copy_bw"] if best else None, SHARE_TARGETS[figure], True,
            best["session"] if best else None)
    bf16, fp8 = best_rows["bf16 decode b1, context 128"], best_rows["FP8 decode b1, context 128"]
    if bf16:
        add("bf16 decode b1, context 128: tok/s (H200 target)", bf16.get("tokens_per_s"), 237.0,
            True, bf16["session"], "tok/s")
    ratio = None
    if bf16 and fp8 and bf16.get("peak_mem_bytes") and fp8.get("peak_mem_bytes"):
        ratio = fp8["peak_mem_bytes"] / bf16["peak_mem_bytes"]
    add("FP8 serving peak / bf16 serving peak", ratio, FP8_PEAK_TARGET, False,
        fp8["session"] if fp8 else None)
    prefill = [p for p in results.get("prefill", []) if p.get("parity_ok")
               and p.get("share_of_gemm_peak") is not None]
    best_prefill = max(prefill, key=lambda p: p["share_of_gemm_peak"], default=None)
    add("8192-token prefill: share of the GEMM peak",
        best_prefill["share_of_gemm_peak"] if best_prefill else None, PREFILL_SHARE_TARGET,
        True, best_prefill["session"] if best_prefill else None)
    every = decode + results.get("prefill", [])
    failed = [r for r in every if r.get("parity_ok") is not True]
    add("rows without parity ok", float(len(failed)) if every else None, 0.0, False, None)

    lines = ["", "## Targets (issue 20)", "", "| figure | measured | target | met | session |",
             "| :--- | ---: | ---: | :--- | :--- |"]
    for row in out:
        measured, target = row["measured"], row["target"]
        if row["unit"] or row["figure"].startswith("rows"):
            shown, goal = ("n/a" if measured is None else f"{measured:,.1f}"), f"{target:,.0f}"
        else:
            shown = "n/a" if measured is None else f"{measured:.1%}"
            goal = f"{target:.0%}"
        goal = ("≥ " if row["better"] == "higher" else "≤ ") + goal
        met = "n/a" if row["met"] is None else ("yes" if row["met"] else "no")
        lines.append(f"| {row['figure']} | {shown} | {goal} | {met} | "
                     f"{row['session'] or 'n/a'} |")
    return {"rows": out, "lines": lines}


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def _parity(row: dict[str, Any]) -> str:
    if row.get("parity_ok") is None:
        return row.get("error") or row.get("status") or "n/a"
    return ("ok" if row["parity_ok"] else "FAIL") + f" (rel {_fmt(row.get('max_rel_err'), '.3g')}" \
        f", top-1 {_fmt(row.get('top1'), '.3f')})"


def render_markdown(payload: dict[str, Any], ladder_rows: list[Any], preset: str,
                    repeat: int) -> str:
    metrics = payload.get("metrics") or {}
    copy_bw = (metrics.get("copy_bandwidth_tb_s") or {}).get("median")
    gemm = (metrics.get("gemm_peak_tflops") or {}).get("median")
    parts = []
    if ladder_rows:
        parts.append(render_ladder_markdown(ladder_rows, {
            "workload": "dense", "preset": preset, "device": payload.get("device"),
            "torch": payload.get("torch"), "step": "decode, batch 1, context 128",
            "dtype": "bfloat16", "repeat": repeat}))
    else:
        parts.append(f"# Dense decode and prefill — {preset} on {payload.get('device')}\n")
    lines = ["", "## Limits measured in this run", "",
             f"- copy bandwidth: {_fmt(copy_bw, '.2f')} TB/s (1 GiB device-to-device, read + "
             "write bytes)", f"- bf16 GEMM peak: {_fmt(gemm, ',.0f')} TFLOP/s (8192^3)"]
    if payload.get("ladder"):
        lines += ["", "## Ladder rows against the limit", "",
                  "| layers | tok/s | bytes/step | TB/s | share of copy bw | limit tok/s |",
                  "| :--- | ---: | ---: | ---: | ---: | ---: |"]
        for row in payload["ladder"]:
            lines.append(f"| {','.join(row['layers'])} | {_fmt(row.get('tokens_per_s'), ',.1f')}"
                         f" | {_fmt(row.get('bytes_per_step'), '.2f', 1e-9)} GB | "
                         f"{_fmt(row.get('effective_tb_s'), '.2f')} | "
                         f"{_fmt(row.get('share_of_copy_bw'), '.1%')} | "
                         f"{_fmt(row.get('limit_tok_s'), ',.0f')} |")
    if payload.get("grid"):
        lines += ["", "## Decode at context x batch", "",
                  "| stack | context | batch | tok/s | bytes/step | TB/s | share of copy bw | "
                  "limit tok/s | serving peak | parity |",
                  "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- |"]
        for row in payload["grid"]:
            lines.append(
                f"| {row['stack']} | {row['context']} | {row['batch']} | "
                f"{_fmt(row.get('tokens_per_s'), ',.1f')} | "
                f"{_fmt(row.get('bytes_per_step'), '.2f', 1e-9)} GB | "
                f"{_fmt(row.get('effective_tb_s'), '.2f')} | "
                f"{_fmt(row.get('share_of_copy_bw'), '.1%')} | "
                f"{_fmt(row.get('limit_tok_s'), ',.0f')} | "
                f"{_fmt(row.get('peak_mem_bytes'), '.2f', 2.0 ** -30)} GiB | {_parity(row)} |")
    if payload.get("prefill"):
        lines += ["", "## Prefill", "",
                  "| layers | tok/s | model TFLOP/s | share of GEMM peak | parity |",
                  "| :--- | ---: | ---: | ---: | :--- |"]
        for row in payload["prefill"]:
            lines.append(f"| {'+'.join(row['layers'])} | {_fmt(row.get('tokens_per_s'), ',.0f')}"
                         f" | {_fmt(row.get('achieved_tflops'), ',.0f')} | "
                         f"{_fmt(row.get('share_of_gemm_peak'), '.1%')} | {_parity(row)} |")
    lines += (payload.get("targets") or {}).get("lines", [])
    if payload.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {k}: {v}"
                                             for k, v in payload["failures"].items()]
    return parts[0] + "\n".join(lines) + "\n"
