"""L0 (eager baseline, exact math) and L1 (TF32 / precision) layers.

Both are process-wide math settings, so L0 sets every one explicitly: the reference must not
inherit TF32 from torch defaults or an earlier layer.
"""

from __future__ import annotations

import torch

from workloads.interface import Workload


def apply_eager_baseline(workload: Workload, device: torch.device) -> str | None:
    """Eager in the preset dtype; TF32 off, full-precision fp32 matmuls, no autotuning."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    return None


def apply_tf32(workload: Workload, device: torch.device) -> str | None:
    """TF32 matmuls and convolutions, fp32 matmul precision 'high', cudnn.benchmark on."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    if device.type != "cuda":
        return "no effect on CPU"
    if workload.compute_precision != "fp32":
        # TF32 only changes fp32 matmuls; a bf16/fp16 model runs exactly as before.
        return f"no effect: the model runs in {workload.compute_precision}, TF32 changes fp32 only"
    workload.compute_precision = "tf32"
    return None
