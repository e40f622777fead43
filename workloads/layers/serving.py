"""L6 serving techniques for the dense decoder: paged KV cache, FP8 KV cache, speculative
decoding with a smaller dense draft.

- L6-paged: K/V in fixed-size blocks addressed through a block table (vLLM's layout); blocks
  are handed out shuffled so the indirection is real. With L3 the one-token decode reads the
  blocks in place (the split-KV kernel follows the table); without it, or for prefill and
  multi-token verify, the blocks are gathered into a contiguous copy per layer.
- L6-fp8kv: K/V stored as e4m3 with a per-layer scale set at prefill (amax x 4 headroom);
  halves the KV bytes. With L3 the decode kernel reads e4m3 and folds the scale into its
  softmax and output; at short contexts the KV cache is a small share of the bytes per
  token, so expect the gain at long contexts and in capacity.
- L6-spec: greedy speculative decoding, ``spec_k`` draft tokens per round from a draft made of
  the target's first ``draft_layers`` blocks (default a quarter) sharing its embedding, norm
  and LM head. Exact: the output equals the target's greedy decode (checked in the parity
  phase, reported as extra.speculative.matches_greedy with the acceptance rate).
"""

from __future__ import annotations

from typing import Any

import torch

from workloads.errors import WorkbenchError


def apply_paged(workload: Any, device: torch.device) -> str | None:
    workload.replace_cache(paged=True)
    workload.runtime.invalidate()
    return f"paged KV cache, {int(workload.params['kv_block'])}-token blocks, block table"


def apply_fp8_kv(workload: Any, device: torch.device) -> str | None:
    workload.replace_cache(fp8=True)
    workload.runtime.invalidate()
    if workload.compute_precision in ("fp32", "tf32", "bf16", "fp16"):
        workload.compute_precision = "fp8"  # parity is judged at the FP8 tolerance
    return "K/V stored as FP8 e4m3, per-layer scale from the prefill"


def apply_speculative(workload: Any, device: torch.device) -> str | None:
    shape = workload.shape
    k = int(workload.params["spec_k"])
    draft_layers = int(workload.params["draft_layers"]) or max(1, shape["layers"] // 4)
    if k < 1 or not 1 <= draft_layers < shape["layers"]:
        raise WorkbenchError(f"speculative decoding needs spec_k >= 1 and 1 <= draft_layers < "
                             f"{shape['layers']} (got {k}, {draft_layers})")
    if shape["prompt_len"] + shape["new_tokens"] + k > shape["max_seq"]:
        raise WorkbenchError("speculative decoding writes up to spec_k positions past the "
                             "last token", f"raise max_seq to >= "
                             f"{shape['prompt_len'] + shape['new_tokens'] + k}")
    workload.enable_speculative(k, draft_layers)
    return (f"draft = first {draft_layers} of {shape['layers']} layers, k={k}; a step decodes "
            f"{workload.spec_count()} tokens per sequence")
