"""A decoder shaped like gpt-oss-20b, random init, on the MoE model of ``workloads.moe``.

gpt-oss-20b: 24 layers, hidden 2880, 64 query / 8 KV heads of dim 64 (so the attention width,
4096, differs from hidden), attention with biases and a learned per-head sink logit, layers
alternating 128-token sliding-window and full attention (even layers slide), 32 experts top-4
with a softmax over the top-4 router logits, clamped SwiGLU experts (alpha 1.702, limit 7)
with biases, no shared expert, vocab 201088. Not modelled: YaRN RoPE scaling (plain RoPE with
theta 150000, fine at these lengths), MXFP4 expert weights (the experts are in the preset
dtype; FP8 is the L5-moe-fp8 layer), interleaved gate/up columns (halves here; the same maths
for random weights).
"""

from __future__ import annotations

from typing import Any

import torch

from workloads.errors import WorkbenchError
from workloads.interface import Workload
from workloads.moe import MoEWorkload

FIXED = {"gating": "softmax_topk", "activation": "gptoss", "sinks": True}


class GptOssWorkload(MoEWorkload):
    name = "gptoss"

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        for key, value in FIXED.items():
            if key in params and params[key] != value:
                raise WorkbenchError(f"gptoss param {key} is fixed to {value!r}",
                                     "use the moe workload to vary it")
        super().build(device, dtype, {**params, **FIXED}, seed)


def create_workload() -> Workload:
    return GptOssWorkload()
