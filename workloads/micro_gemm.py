"""GEMM precision micro-workload: out[M, N] = x[M, K] @ w[N, K]^T in several number formats.

Variants (the baseline is fp32 with full-precision matmuls):
  fp32       fp32 inputs, fp32 math (TF32 off)
  tf32       fp32 inputs, TF32 tensor-core math (CUDA; on CPU it is fp32)
  bf16       bf16 inputs, fp32 accumulate
  fp8_tensor e4m3 inputs with one scale per tensor, torch._scaled_mm, bf16 out (cc >= 8.9)
  fp8_row    e4m3 inputs with one scale per row of x and per row of w (cc >= 9.0)
  int8_wo    int8 weights with a per-output-row scale, bf16 activations: dequantization
             happens inside the matmul (torch._weight_int8pack_mm where the build has it for
             the device, else dequantize-then-matmul; ``extra.int8_path`` says which)
  sparse24   2:4 structured-sparse weights (torch.sparse.to_sparse_semi_structured, bf16,
             cc >= 8.0). The weight is pruned to 2:4 (the 2 largest of every 4) for every
             variant when this one is chosen, so the baseline is the dense GEMM on the same
             pruned matrix: the parity checks the kernel, not the accuracy cost of pruning.

Quantization of x and w happens once before timing (static weights; activation quantization
is a separate kernel in a real model). ``extra.error_vs_fp64`` holds max and RMS error of the
variant's output relative to an fp64 GEMM of the original fp32 inputs, so the error the format
costs (quantization included) is reported next to its TFLOP/s.
"""

from __future__ import annotations

from typing import Any

import torch

from workloads.errors import WorkbenchError
from workloads.micro_base import MicroWorkload, check_params, positive_int

KNOWN = ("m", "n", "k", "variant", "dtype")
FP8_MAX = 448.0  # largest finite float8_e4m3fn


def prune_2_4(w: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude values of every 4 consecutive ones along K."""
    groups = w.reshape(-1, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(w.shape)


def quantize_fp8(t: torch.Tensor, rowwise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 tensor, fp32 scale) with t ~= fp8 * scale; scale per tensor or per row."""
    amax = t.abs().amax(dim=1, keepdim=True) if rowwise else t.abs().amax()
    scale = (amax.float() / FP8_MAX).clamp_min(1e-12)
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


def quantize_int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = (w.abs().amax(dim=1).float() / 127.0).clamp_min(1e-12)
    return torch.round(w.float() / scale[:, None]).clamp(-127, 127).to(torch.int8), scale


class GemmWorkload(MicroWorkload):
    name = "gemm"
    baseline = "fp32"
    default_variant = "bf16"
    variants = {"fp32": (), "tf32": (), "bf16": (), "fp8_tensor": ("cc>=8.9",),
                "fp8_row": ("cc>=9.0",), "int8_wo": (), "sparse24": ("cc>=8.0",)}
    precision_of = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp8_tensor": "fp8",
                    "fp8_row": "fp8", "int8_wo": "bf16", "sparse24": "bf16"}

    def setup(self, params: dict[str, Any], seed: int) -> None:
        check_params(self.name, params, KNOWN)
        self.shape = {key: positive_int(self.name, params, key) for key in ("m", "n", "k")}
        if self.variant in ("tf32",) and self.device.type != "cuda":
            self.compute_precision = "fp32"  # no TF32 on the CPU: same math as fp32
        self.facts["shape"] = dict(self.shape)
        self._prepared: dict[str, Any] = {}

    def make_inputs(self, seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        m, n, k = self.shape["m"], self.shape["n"], self.shape["k"]
        x = torch.randn(m, k, generator=generator)
        w = torch.randn(n, k, generator=generator) / k ** 0.5
        if self.variant == "sparse24":
            if k % 4:
                raise WorkbenchError(f"sparse24 needs k divisible by 4, got {k}")
            w = prune_2_4(w)
        inputs = {"x": x.to(self.device), "w": w.to(self.device)}
        self._prepare_variant(inputs)
        return inputs

    def _prepare_variant(self, inputs: dict[str, torch.Tensor]) -> None:
        """Quantize / convert once, untimed, for the selected variant."""
        x, w, prep = inputs["x"], inputs["w"], self._prepared
        variant = self.variant
        if variant in ("bf16", "int8_wo", "sparse24"):
            prep["x16"] = x.to(torch.bfloat16)
        if variant == "bf16":
            prep["w16"] = w.to(torch.bfloat16)
        elif variant in ("fp8_tensor", "fp8_row"):
            rowwise = variant == "fp8_row"
            prep["x8"], prep["sx"] = quantize_fp8(x, rowwise)
            w8, sw = quantize_fp8(w, rowwise)
            # _scaled_mm wants the second operand column-major: pass w8^T as a view.
            prep["w8t"], prep["sw"] = w8.t(), (sw.t() if rowwise else sw)
        elif variant == "int8_wo":
            prep["w8"], prep["scale"] = quantize_int8_rows(w)
            prep["int8_path"] = self._pick_int8_path(prep)
            self.facts["int8_path"] = prep["int8_path"]
        elif variant == "sparse24":
            from torch.sparse import to_sparse_semi_structured

            prep["w_sparse"] = to_sparse_semi_structured(w.to(torch.bfloat16))

    def _pick_int8_path(self, prep: dict[str, Any]) -> str:
        try:
            probe = torch._weight_int8pack_mm(prep["x16"][:1], prep["w8"],
                                              prep["scale"].to(torch.bfloat16))
            return "torch._weight_int8pack_mm" if probe.shape[-1] == prep["w8"].shape[0] \
                else "dequantize+matmul"
        except (RuntimeError, NotImplementedError, AttributeError):
            return "dequantize+matmul"

    def run_variant(self, variant: str, inputs: Any) -> torch.Tensor:
        x, w, prep = inputs["x"], inputs["w"], self._prepared
        if variant == "fp32":
            return self._fp32(x, w, tf32=False)
        if variant == "tf32":
            return self._fp32(x, w, tf32=True)
        if variant == "bf16":
            return prep["x16"] @ prep["w16"].t()
        if variant in ("fp8_tensor", "fp8_row"):
            return torch._scaled_mm(prep["x8"], prep["w8t"], scale_a=prep["sx"],
                                    scale_b=prep["sw"], out_dtype=torch.bfloat16)
        if variant == "int8_wo":
            if prep["int8_path"] == "torch._weight_int8pack_mm":
                return torch._weight_int8pack_mm(prep["x16"], prep["w8"],
                                                 prep["scale"].to(torch.bfloat16))
            return (prep["x16"] @ prep["w8"].to(torch.bfloat16).t()) \
                * prep["scale"].to(torch.bfloat16)
        return torch.mm(prep["x16"], prep["w_sparse"].t())  # sparse24

    @staticmethod
    def _fp32(x: torch.Tensor, w: torch.Tensor, tf32: bool) -> torch.Tensor:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            return x @ w.t()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous

    def prepare(self, inputs: Any) -> None:
        super().prepare(inputs)
        reference = inputs["x"].double() @ inputs["w"].double().t()
        out = self.run_variant(self.variant, inputs).double()
        scale = reference.abs().max().clamp_min(1e-300)
        self.facts["error_vs_fp64"] = {
            "max_rel": float((out - reference).abs().max() / scale),
            "rms_rel": float((out - reference).pow(2).mean().sqrt()
                             / reference.pow(2).mean().sqrt().clamp_min(1e-300)),
        }

    def tokens_per_step(self) -> int:
        return self.shape["m"]  # rows of x: the tokens a linear layer would process

    def flops_per_step(self) -> float | None:
        s = self.shape
        # Dense-equivalent FLOPs for sparse24 too (the convention for 2:4 speedups).
        return 2.0 * s["m"] * s["n"] * s["k"]

    def bytes_per_step(self) -> float | None:
        s = self.shape
        in_bytes = {"fp32": 4, "tf32": 4, "bf16": 2, "fp8_tensor": 1, "fp8_row": 1}
        x_bytes = in_bytes.get(self.variant, 2)
        w_bytes = {"int8_wo": 1.0, "sparse24": 1.25}.get(self.variant, float(x_bytes))
        out_bytes = 4 if self.variant in ("fp32", "tf32") else 2
        return float(s["m"] * s["k"] * x_bytes + s["n"] * s["k"] * w_bytes
                     + s["m"] * s["n"] * out_bytes)


def create_workload() -> GemmWorkload:
    return GemmWorkload()
