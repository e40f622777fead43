"""The public workload interface: what the child runner needs from a model to measure it.

A workload module (named by ``catalog.WorkloadInfo.module``) exposes ``create_workload()``
returning a ``Workload``. The runner then calls, in order:

    build(device, dtype, params, seed)   allocate weights (on the device, in dtype)
    make_inputs(seed)                    fixed inputs; same seed -> same inputs
    parity_outputs(inputs)               logits of a short greedy decode (the L0 reference)
    <layers are applied: they may replace ``model`` or change global math settings>
    parity_outputs(inputs, forced)       logits again, fed the reference's tokens
    prepare(inputs)                      one-off state before timing (e.g. prefill the cache)
    reset(); step(inputs)                per repeat; only ``step`` is timed

``step`` must not synchronize the device: the runner times it with CUDA events (GPU) or
``perf_counter`` (CPU). ``flops_per_step`` / ``bytes_per_step`` are analytic (None if unknown),
so achieved TFLOP/s and GB/s can be reported without a profiler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ParityOutputs:
    """Logits of a greedy decode: ``logits`` [steps, batch, vocab] float32, ``tokens`` [steps,
    batch] (the argmax at each step, which the next step was fed)."""

    logits: torch.Tensor
    tokens: torch.Tensor


def prompt_tokens(vocab: int, batch: int, length: int, seed: int,
                  device: torch.device) -> torch.Tensor:
    """A seeded random prompt, drawn on the CPU so every device sees the same one."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=generator).to(device)


def greedy_parity(forward: Any, inputs: torch.Tensor, new_tokens: int,
                  forced_tokens: torch.Tensor | None = None) -> ParityOutputs:
    """Prefill then decode ``new_tokens`` greedily, keeping every step's last-token logits.

    ``forward(tokens, start)`` returns the logits of the last position. With
    ``forced_tokens`` (the reference's tokens) the candidate is teacher-forced, so logits
    compare position by position even where a near-tie flips one argmax."""
    steps_logits, steps_tokens = [], []
    logits, position = forward(inputs, 0), inputs.shape[1]
    for index in range(new_tokens):
        steps_logits.append(logits.to(torch.float32, copy=True))
        token = logits.argmax(-1) if forced_tokens is None else forced_tokens[index]
        steps_tokens.append(token)
        if index + 1 < new_tokens:
            logits = forward(token[:, None], position)
            position += 1
    return ParityOutputs(torch.stack(steps_logits), torch.stack(steps_tokens))


class Workload(ABC):
    name: str = "workload"
    # What one measured step is ("decode", "prefill", "generate"); reported as metrics.step.
    step_name: str = "step"
    # Numerical precision the math runs in ("fp32", "tf32", "bf16", "fp16", "fp8"); layers
    # that change it (TF32, FP8) update it so parity picks the matching tolerance.
    compute_precision: str = "fp32"
    # The torch module layers may transform (compile, fuse, swap attention); None if none.
    model: torch.nn.Module | None = None

    @abstractmethod
    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        """Create weights on ``device`` in ``dtype``. Raise WorkbenchError for bad params."""

    @abstractmethod
    def make_inputs(self, seed: int) -> Any:
        """Deterministic inputs for ``seed`` (identical across devices)."""

    @abstractmethod
    def parity_outputs(self, inputs: Any, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        """Logits of a short decode. With ``forced_tokens`` (from the reference run) each step
        is fed those tokens instead of its own argmax, so logits compare position by position
        even where the candidate would pick a different token."""

    def prepare(self, inputs: Any) -> None:  # noqa: B027 - optional hook, no-op by default
        """One-off state before warm-up and timing (e.g. prefill the KV cache)."""

    def reset(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Restore the state ``step`` starts from (e.g. the KV cache position), untimed."""

    @abstractmethod
    def step(self, inputs: Any) -> Any:
        """The measured step. Must not synchronize the device."""

    @abstractmethod
    def tokens_per_step(self) -> int:
        """Tokens one step produces (decode: batch) or consumes (prefill: batch*prompt_len)."""

    def flops_per_step(self) -> float | None:
        return None

    def bytes_per_step(self) -> float | None:
        return None

    # Generation workloads time TTFT and TPOT through these two phases; others leave
    # ``generates`` False and the metrics stay null.
    generates: bool = False

    def prefill(self, inputs: Any) -> Any:
        raise NotImplementedError

    def decode_rest(self) -> int:
        """Decode the remaining tokens after ``prefill``; returns how many were decoded."""
        raise NotImplementedError

    def prefill_tokens(self) -> int | None:
        """Prompt tokens one ``prefill`` processes (for prefill tokens/s), None if n/a."""
        return None

    def extra(self) -> dict[str, Any]:
        """Workload-specific facts for result.json ``details`` (shape, param count, ...)."""
        return {}

    def profile_sample(self) -> ProfileSample | None:
        """A representative part of the step for per-kernel replay profilers (ncu), or None
        to profile the whole step. The default: one decoder block (the last, which is a MoE
        block where the first ones are dense) of a model with ``blocks`` of four or more.
        Layers of one model are identical, so one block times ``len(blocks)`` stands for the
        layer stack. The gate hooks are installed before the step is compiled or captured
        (workloads.measure.ProfilerGate), so they also fire in compiled code; a CUDA-graph
        step runs its captured kernels outside the graph while profiled (``graph_bypass``)."""
        model = self.model
        blocks = getattr(model, "blocks", None)
        if model is None or not isinstance(blocks, torch.nn.ModuleList) or len(blocks) < 4:
            return None
        return ProfileSample(spans=[(blocks[-1], blocks[-1])], blocks_profiled=1,
                             blocks_total=len(blocks),
                             what=f"decoder block {len(blocks) - 1} of {len(blocks)}",
                             graph_bypass=getattr(getattr(self, "runtime", None),
                                                  "bypass_graphs", None))


@dataclass
class ProfileSample:
    """Module spans (start module, stop module): the profiler range opens before the first's
    forward and closes after the second's."""

    spans: list[tuple[torch.nn.Module, torch.nn.Module]]
    blocks_profiled: int
    blocks_total: int
    what: str
    # A context manager factory that runs a CUDA-graph step's kernels outside the graph (module
    # hooks do not fire on graph replay; ncu replays each kernel alone either way), or None.
    graph_bypass: Any = None

    def describe(self) -> dict[str, Any]:
        return {"scope": "sample", "what": self.what, "blocks_profiled": self.blocks_profiled,
                "blocks_total": self.blocks_total,
                "note": f"per-kernel replay of {self.what} only (layers are identical); "
                        f"multiply its kernel times by "
                        f"{self.blocks_total / self.blocks_profiled:g} for the layer stack. "
                        "Pass --profiler-option scope=step for every kernel of the step."}
