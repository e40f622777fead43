"""Child process of test_moe_gemv.py: the fused expert-GEMV kernels in Triton's interpreter
(TRITON_INTERPRET=1 must be set before triton is imported) against a float64 oracle and the
torch reference. Prints one JSON object (case -> figures) as its last line."""

from __future__ import annotations

import json
import traceback
from typing import Any

import torch

from workloads.layers import moe_experts as mx
from workloads.layers import moe_gemv as mg


def oracle(x: torch.Tensor, idx: torch.Tensor, gate: torch.Tensor, w13: torch.Tensor,
           w2: torch.Tensor, b13: Any, b2: Any, s13: Any, s2: Any, activation: str
           ) -> torch.Tensor:
    """float64, one slot at a time; h rounded to x's dtype where the kernel stores it."""
    tokens, top_k = idx.shape
    out = torch.zeros(tokens, x.shape[1], dtype=torch.float64)
    for t in range(tokens):
        for j in range(top_k):
            e = int(idx[t, j])
            up = w13[e].double() * (s13[e].double()[:, None] if s13 is not None else 1.0)
            h = up @ x[t].double() + (b13[e].double() if b13 is not None else 0.0)
            h = mx.activate(h, activation).to(x.dtype).double()
            down = w2[e].double() * (s2[e].double()[:, None] if s2 is not None else 1.0)
            y = down @ h + (b2[e].double() if b2 is not None else 0.0)
            out[t] += float(gate[t, j]) * y
    return out


def case(dtype: torch.dtype, fp8: bool, bias: bool, activation: str, tokens: int, top_k: int,
         experts: int, hidden: int, inter: int, config: Any, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, hidden, generator=g).to(dtype)
    idx = torch.rand(tokens, experts, generator=g).topk(top_k, dim=-1).indices
    gate = torch.rand(tokens, top_k, generator=g).to(dtype)
    w13 = (torch.randn(experts, 2 * inter, hidden, generator=g) / hidden ** 0.5).to(dtype)
    w2 = (torch.randn(experts, hidden, inter, generator=g) / inter ** 0.5).to(dtype)
    b13 = (torch.randn(experts, 2 * inter, generator=g) * 0.1).to(dtype) if bias else None
    b2 = (torch.randn(experts, hidden, generator=g) * 0.1).to(dtype) if bias else None
    s13 = s2 = None
    if fp8:
        w13, s13 = mx.quantize_rows(w13)
        w2, s2 = mx.quantize_rows(w2)
    args = (x, idx, gate, w13, w2, b13, b2, s13, s2, activation)
    got = mg.experts_gemv_triton(*args, config=config)
    reference = mg.experts_gemv_reference(*args)
    want = oracle(*args)
    shared = idx.reshape(-1).unique().numel() < idx.numel()
    return {"rel": float((got.double() - want).norm() / want.norm()),
            "rel_reference": float((reference.double() - want).norm() / want.norm()),
            "finite": bool(torch.isfinite(got).all()), "shape": list(got.shape),
            "dtype": str(got.dtype), "experts_shared_by_tokens": shared}


CASES = {
    # sizes that are not multiples of the blocks; tokens that share experts
    "bf16_gptoss_bias_small_blocks": (torch.bfloat16, False, True, "gptoss", 3, 4, 8, 40, 24,
                                      mg.GemvConfig(8, 16, 1, 1), 1),
    "fp32_swiglu_tight": (torch.float32, False, False, "swiglu", 2, 6, 16, 48, 20,
                          mg.GemvConfig(8, 32, 1, 1), 2),
    "fp8_swiglu_no_bias": (torch.bfloat16, True, False, "swiglu", 4, 2, 4, 64, 32,
                           mg.GemvConfig(16, 32, 1, 1), 3),
    "fp8_gptoss_bias": (torch.bfloat16, True, True, "gptoss", 1, 4, 32, 72, 40,
                        mg.GemvConfig(8, 64, 1, 1), 4),
    "default_config_batch1": (torch.bfloat16, False, True, "gptoss", 1, 4, 8, 300, 40, None, 5),
}


def main() -> None:
    results: dict[str, Any] = {}
    for name, params in CASES.items():
        try:
            results[name] = case(*params)
        except Exception as exc:  # reported per case; the test shows the trace
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()[-2000:]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
