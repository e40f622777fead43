"""A kernel far below its roof for the bytes and FLOPs it must move: the sentence a performance
engineer opens the tool for ("the decode attention runs cuDNN's flash prefill kernel, 32 calls
per step, 0.81 ms of a 5.06 ms step, to read ~16 MB of KV cache that should take microseconds").

Grounded in the speed-of-light budget (analyzers.sol_budget) where the analysis has one: the
kernel line with the most time lost against its roof. Without a budget, the one case the run's
own shape settles is checked: decode attention, whose bytes are the KV cache it reads
(2 x batch x kv_heads x head_dim x context x layers x element size), at this device's memory
roof (calibrated when cached, else the spec sheet)."""

from __future__ import annotations

from typing import Any

from analyzers.advice.effect import fmt_us, impact, recoverable_text
from analyzers.advice.facts import Facts
from analyzers.advice.findings import Evidence, Finding
from analyzers.advice.kernel_select import category_mask, short_name, top_names
from analyzers.distinct import str_mask
from profilers.parsers.schema import Category, Col

FAR_BELOW_FACTOR = 5.0  # measured / speed-of-light at least this
MIN_LOST_SHARE = 0.03  # of the step: smaller losses are not worth a finding
_ELEMENT_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "bf16": 2, "fp16": 2, "fp32": 4}

DECODE_ATTENTION_REMEDY = (
    "Use a decode attention kernel for one query row: split-KV / flash-decoding "
    "(FlashAttention's flash_attn_with_kvcache, FlashInfer's decode kernels), or restrict SDPA "
    "to the flash backend (torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)). A "
    "prefill kernel tiles the queries; with one query per sequence it runs batch x heads "
    "blocks that each walk the whole KV cache, and most SMs stay idle.")


def _budget_line(f: Facts) -> Any | None:
    lines = [ln for ln in getattr(f.budget, "lines", ()) or ()
             if ln.kind == "kernel" and ln.sol_ns and ln.lost_ns and ln.measured_ns]
    lines = [ln for ln in lines if ln.measured_ns >= FAR_BELOW_FACTOR * ln.sol_ns]
    return max(lines, key=lambda ln: ln.lost_ns) if lines else None


def _from_budget(f: Facts) -> Finding | None:
    line = _budget_line(f)
    budget = f.budget
    if line is None or not budget.step_ns or line.lost_ns < MIN_LOST_SHARE * budget.step_ns:
        return None
    us = line.lost_ns / 1e3
    source = f"{f.source}, speed-of-light budget ({budget.ceilings_source} ceilings" + (
        f" of the {budget.device_name})" if budget.device_name else ")")
    evidence = [Evidence("time per step", round(line.measured_ns / 1e3, 1), None, source, "us", ""),
                Evidence("at its roof", round(line.sol_ns / 1e3, 2), None, source, "us", ""),
                Evidence("measured / speed of light", round(line.measured_ns / line.sol_ns, 1),
                         FAR_BELOW_FACTOR, source, "x")]
    if line.launches is not None:
        evidence.insert(1, Evidence("launches per step", line.launches, None, source, comparison=""))
    if line.pct_of_roof is not None:
        evidence.append(Evidence("% of roof", round(line.pct_of_roof, 1), None, source, "%", ""))
    remedy = (DECODE_ATTENTION_REMEDY if line.category == Category.ATTENTION and f.step == "decode"
              else f"Find why {short_name(line.name)} runs far from its {line.bound or 'roof'}: "
              "launch shape (too few blocks for the SMs), the algorithm the library picked for "
              "this shape, or a better-suited kernel.")
    return Finding(
        rule="kernel_far_below_roof",
        finding=f"{short_name(line.name)} takes {fmt_us(line.measured_ns / 1e3)} per step where its "
                f"work needs {fmt_us(line.sol_ns / 1e3)} at the {line.bound or ''} roof: "
                f"{line.why}",
        evidence=tuple(evidence),
        action=remedy + (f" (layer {line.layer})" if line.layer else ""),
        expected_effect=f"The kernel at its roof: {fmt_us(us)} per step back.",
        confidence="high" if line.source in ("inventory", "ncu") else "medium",
        impact=impact(f, us, line.share_of_step or 0.1), layer=line.layer,
        kernels=(line.name,), recoverable_us=us,
        recoverable=recoverable_text(f, us, "the budget's measured time less the time at the "
                                     "roof"))


def decode_kv_bytes(f: Facts) -> tuple[float, str] | None:
    """KV-cache bytes one decode step's attention must read, from the run's shape."""
    s = f.shape
    keys = ("batch", "kv_heads", "layers", "prompt_len", "new_tokens")
    if not all(isinstance(s.get(k), int) and s[k] > 0 for k in keys):
        return None
    head_dim = s.get("head_dim")
    if not isinstance(head_dim, int):
        hidden, heads = s.get("hidden"), s.get("heads")
        if not (isinstance(hidden, int) and isinstance(heads, int) and heads > 0):
            return None
        head_dim = hidden // heads
    elt = 1 if "L6-fp8kv" in f.layers else _ELEMENT_BYTES.get(str(s.get("dtype")))
    if elt is None:
        return None
    context = s["prompt_len"] + s["new_tokens"]  # the longest context of the run: an upper bound
    total = 2.0 * s["batch"] * s["kv_heads"] * head_dim * context * s["layers"] * elt
    how = (f"K and V: batch {s['batch']} x {s['kv_heads']} KV heads x head_dim {head_dim} x "
           f"context <= {context} x {s['layers']} layers x {elt} B")
    return total, how


def _decode_attention(f: Facts) -> Finding | None:
    if (f.step != "decode" or not f.has_kernels or f.ceilings is None or not f.ceilings.dram_bw
            or not f.steps or not f.step_ns):
        return None
    kt = f.kernels
    assert kt is not None and f.total_ns
    attn = category_mask(kt, Category.ATTENTION)
    if not attn.any():
        return None
    kv = decode_kv_bytes(f)
    if kv is None:
        return None
    kv_bytes, how = kv
    measured_ns = float(kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)[attn].sum()) / f.steps
    sol_ns = kv_bytes / f.ceilings.dram_bw * 1e9
    lost_ns = measured_ns - sol_ns
    if measured_ns < FAR_BELOW_FACTOR * sol_ns or lost_ns < MIN_LOST_SHARE * f.step_ns:
        return None
    top = top_names(kt, attn, f.total_ns)
    name = top[0][0]
    launches = int(str_mask(kt[Col.NAME], name.__eq__).sum()) / f.steps
    us = lost_ns / 1e3
    ceil = f"{f.ceilings.source} ceilings of the {f.ceilings.device_name}"
    layer = f.layer("attention_kernel")
    return Finding(
        rule="kernel_far_below_roof",
        finding=f"Decode attention runs {short_name(name)}, {launches:g} calls per step, "
                f"{fmt_us(measured_ns / 1e3)} per step (attention kernels) to read "
                f"~{kv_bytes / 1e6:,.0f} MB of KV cache that takes {fmt_us(sol_ns / 1e3)} at "
                f"the {f.ceilings.dram_bw / 1e12:.2f} TB/s memory roof: "
                f"{measured_ns / sol_ns:,.0f}x its speed of light.",
        evidence=(Evidence("attention time per step", round(measured_ns / 1e3, 1), None,
                           f"{f.source} ({f.steps:g} profiled steps)", "us", ""),
                  Evidence(f"launches per step of {short_name(name)}", launches, None, f.source,
                           comparison=""),
                  Evidence("KV bytes per step", round(kv_bytes / 1e6, 1), None,
                           f"the run's shape ({how})", "MB", ""),
                  Evidence("time at the memory roof", round(sol_ns / 1e3, 2), None, ceil, "us", ""),
                  Evidence("measured / speed of light", round(measured_ns / sol_ns, 1),
                           FAR_BELOW_FACTOR, ceil, "x")),
        action=DECODE_ATTENTION_REMEDY + (f" (layer {layer} switches attention to SDPA)"
                                          if layer else ""),
        expected_effect=f"Attention near the memory roof: up to {fmt_us(us)} per step back.",
        confidence="medium", impact=impact(f, us, 0.1), layer=layer, kernels=(name,),
        recoverable_us=us,
        recoverable=recoverable_text(f, us, "the attention kernels' time less the KV bytes at "
                                     "the memory roof"))


def kernel_far_below_roof(f: Facts) -> Finding | None:
    # The budget's lines where it costed the kernels; where it could not (a graphed or
    # compiled trace without an inventory), the run's shape still settles decode attention.
    if f.budget is None:
        return _decode_attention(f)
    found = _from_budget(f)
    uncosted = any(ln.kind == "unknown" for ln in getattr(f.budget, "lines", ()) or ())
    return found or (_decode_attention(f) if uncosted else None)


ROOF_RULES = (kernel_far_below_roof,)
