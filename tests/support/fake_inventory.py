"""The operation inventory of a big preset without its weights: the workload is built and
stepped under ``FakeTensorMode`` (shapes and dtypes only, no memory), so the 8B dense preset's
inventory is recorded on a CPU box in about a second — to match against real H200 traces that
were captured before runs stored their inventory.

Recorded on the CPU device (this torch has no CUDA, and fake CUDA tensors fail on Python-level
slicing), with two CUDA-only branches taken as on the GPU: the FP8 linear's CPU fallback is
routed through ``torch.ops.aiperf.gemv`` (what it calls on CUDA), and the pinned prompt upload
(prefill only, not in the decode step) is off. The prefill that fills the KV cache runs eagerly
too (compiled code cannot run on fake tensors; only shapes matter here). Layers are applied without their device
requirement checks (L5-gemv needs Triton) — they only set flags and swap modules; the MoE
layers, which choose their backend by probing real numbers, are set to what the H200 chose.

Also a script: ``python -m tests.support.fake_inventory dense llama-3.1-8b L0,L1,L2 > inv.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from unittest import mock

import torch

MOE_LAYERS = ("L5-moe-fp8", "L6-moe-grouped")


def _moe_layer_as_on_the_gpu(workload: Any, name: str) -> None:
    """The MoE layers pick their backend by running a probe on real numbers, which fake tensors
    do not have: set the outcome an H200 run records instead ("sorted dispatch +
    torch._grouped_mm"; FP8 experts through torch._scaled_grouped_mm)."""
    from workloads.layers.moe_block import moe_blocks
    from workloads.layers.moe_experts import quantize_rows

    for block in moe_blocks(workload.model):
        block.dispatch = "sorted"
        if name == "L6-moe-grouped":
            block.backend = "grouped_mm"
        elif block.weights.w13 is not None and block.weights.w2 is not None:
            w = block.weights
            (w.w13_q, w.w13_s), (w.w2_q, w.w2_s) = quantize_rows(w.w13), quantize_rows(w.w2)
            w.w13 = w.w2 = None
    if name == "L5-moe-fp8":
        workload.compute_precision = "fp8"


def fake_inventory(workload_name: str, preset: str, layers: list[str],
                   params: dict[str, Any] | None = None, legacy: bool = False
                   ) -> dict[str, Any]:
    """``legacy``: the dense decode path as it was when the session-15 H200 traces were
    captured (commit d560b78), before the decode kernels: SDPA decode attention (param
    decode_kernel=sdpa, no fused RoPE + KV write) and separate RMSNorm / residual-add ops
    around the GEMVs (fused norms off — the folded norm weights of the random model are ones,
    so the numbers are those of the old path too)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from workloads import catalog, inventory
    from workloads.layers import APPLY_FUNCTIONS, lowbit
    from workloads.run import load_workload

    params = dict(params or {})
    if legacy and workload_name == "dense":
        params.setdefault("decode_kernel", "sdpa")
    spec = mock.Mock(target=None, workload=workload_name, preset=preset, params=params)
    workload, merged = load_workload(spec)
    device = torch.device("cpu")
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16,
             "float32": torch.float32}[merged.get("dtype", "float32")]
    with FakeTensorMode(allow_non_fake_inputs=True), torch.inference_mode(), \
            mock.patch.object(lowbit, "gemv_reference",
                              lambda *args: torch.ops.aiperf.gemv(*args)):
        workload.build(device, dtype, merged, seed=0)
        for name in catalog.parse_layers(layers):
            if name in MOE_LAYERS:
                _moe_layer_as_on_the_gpu(workload, name)
            else:
                APPLY_FUNCTIONS[name](workload, device)
        runtime = getattr(workload, "runtime", None)
        if runtime is not None:
            runtime.pinned = False
        if legacy and hasattr(workload, "set_fused_norms"):
            workload.set_fused_norms(False)
        shape = workload.shape
        inputs = torch.zeros((shape["batch"], shape["prompt_len"]), dtype=torch.long)
        with inventory.eager_runtimes(workload):  # compiled code would run on fake data
            workload.prepare(inputs)
        return inventory.record_step(workload, inputs, device)


if __name__ == "__main__":
    name, preset, layer_list = sys.argv[1:4]
    print(json.dumps(fake_inventory(name, preset, layer_list.split(","))))
