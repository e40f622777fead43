"""How the dense decoder is called: eager, static-shape, compiled (L5), CUDA-graphed (L4).

``DecodeRuntime.forward(tokens [B, S], start: int)`` is the one entry every path uses:
  start == 0  prefill: logits of the last position [B, 1, V] (eager, or compiled with
              ``compile_prefill_mode``)
  start > 0   decode / speculative verify: logits of all S positions [B, S, V]. With the
              static cache (L2) the position travels as a device tensor and shapes never
              change; with L5 the step is compiled once; with L4 one CUDA graph is captured
              per (batch, S) bucket and replayed (tokens and position copied into its static
              input buffers first).

Layers only set flags; the compiled function and graphs are built on first use after the last
layer, so the order layers are applied in does not matter (compile wraps the final model).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch

# Every decode runtime that captured CUDA graphs. A graph that holds NCCL kernels (L4 under tensor
# parallelism) makes destroy_process_group() hang in ncclCommDestroy while it is alive
# (pytorch/pytorch#115388; seen on 2 H200s: the run finished, then hung until its timeout), so
# a distributed run resets them all before leaving the group.
_GRAPHED: weakref.WeakSet[GraphedDecode] = weakref.WeakSet()


def release_cuda_graphs() -> int:
    """Reset every captured decode graph (frees its memory and its NCCL references); returns
    how many. The runtimes that owned them recapture on their next call."""
    count = 0
    for runtime in list(_GRAPHED):
        count += runtime.release()
    return count


class GraphedDecode:
    """CUDA graphs of ``core(tokens, pos)`` per (batch, seq) bucket, sharing one memory pool."""

    def __init__(self, core: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 device: torch.device) -> None:
        self.core, self.device = core, device
        self.buckets: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor,
                                                  torch.Tensor]] = {}
        self.pool: Any = None
        # While True, a call launches the captured step's kernels directly (the same kernels
        # the graph holds) instead of replaying: Nsight Compute's sampled scope needs module
        # hooks, which do not fire on replay, and ncu replays each kernel alone either way.
        self.bypass = False

    def _capture(self, tokens: torch.Tensor, position: int) -> tuple[Any, ...]:
        static_tokens = tokens.clone()
        static_pos = torch.full((1,), position, device=self.device, dtype=torch.long)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up: compile / autotune happen here, not in capture
            for _ in range(3):
                self.core(static_tokens, static_pos)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_out = self.core(static_tokens, static_pos)
        self.pool = graph.pool()
        _GRAPHED.add(self)
        return graph, static_tokens, static_pos, static_out

    def release(self) -> int:
        """Reset and drop the captured graphs; returns how many there were."""
        graphs = [bucket[0] for bucket in self.buckets.values()]
        for graph in graphs:
            graph.reset()
        self.buckets.clear()
        self.pool = None
        return len(graphs)

    def __call__(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        key = tuple(tokens.shape)
        if key not in self.buckets:
            self.buckets[key] = self._capture(tokens, position)
        graph, static_tokens, static_pos, static_out = self.buckets[key]
        static_tokens.copy_(tokens)
        static_pos.fill_(position)
        if self.bypass:
            return self.core(static_tokens, static_pos)
        graph.replay()
        return static_out  # overwritten by the next replay: callers reduce it at once


class DecodeRuntime:
    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.static = False  # L2
        self.pinned = False  # L2 (CUDA)
        self.graphs = False  # L4
        self.compile_mode: str | None = None  # L5
        self.compile_prefill_mode: str | None = "default"  # None: the prefill stays eager
        self.weight_bytes_ratio = 1.0  # L5-fp8 halves the weight bytes
        self.notes: list[str] = []
        self.invalidate()

    def invalidate(self) -> None:
        self._decode: Callable[[torch.Tensor, int], torch.Tensor] | None = None
        self._prefill: Callable[[torch.Tensor], torch.Tensor] | None = None

    def configure_like(self, other: DecodeRuntime) -> None:
        self.static, self.pinned, self.graphs = other.static, other.pinned, other.graphs
        self.compile_mode, self.compile_prefill_mode = (other.compile_mode,
                                                        other.compile_prefill_mode)
        self.invalidate()

    @contextlib.contextmanager
    def bypass_graphs(self) -> Iterator[bool]:
        """Run the captured decode step's kernels outside its CUDA graph inside this block;
        yields whether there was a graph to bypass."""
        graphed = self._decode if isinstance(self._decode, GraphedDecode) else None
        if graphed is None:
            yield False
            return
        graphed.bypass = True
        try:
            yield True
        finally:
            graphed.bypass = False

    def describe(self) -> dict[str, Any]:
        return {"static_cache": self.static, "pinned_host": self.pinned,
                "cuda_graphs": self.graphs and self.compile_mode != "reduce-overhead",
                "compile_mode": self.compile_mode, "cache": type(self.model.cache).__name__,
                "notes": self.notes}

    def _build(self) -> None:
        model = self.model

        def prefill_core(tokens: torch.Tensor) -> torch.Tensor:
            return model(tokens, 0)

        def decode_core(tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            return model(tokens, pos, all_logits=True)

        if self.compile_mode is not None:
            if self.compile_prefill_mode is not None:
                prefill_core = torch.compile(prefill_core, mode=self.compile_prefill_mode,
                                             dynamic=False)
            decode_core = torch.compile(decode_core, mode=self.compile_mode, dynamic=False)
        self._prefill = prefill_core
        if not self.static:
            self._decode = lambda tokens, start: model(tokens, start, all_logits=True)
        elif self.graphs and self.device.type == "cuda" \
                and self.compile_mode != "reduce-overhead":
            self._decode = GraphedDecode(decode_core, self.device)
        else:
            pos = torch.zeros(1, device=self.device, dtype=torch.long)
            marks_steps = self.compile_mode == "reduce-overhead"

            def static_decode(tokens: torch.Tensor, start: int) -> torch.Tensor:
                pos.fill_(start)
                if marks_steps:
                    torch.compiler.cudagraph_mark_step_begin()
                return decode_core(tokens, pos)

            self._decode = static_decode

    def forward(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        if self._decode is None or self._prefill is None:
            self._build()
        assert self._decode is not None and self._prefill is not None
        if start == 0:
            return self._prefill(tokens)[:, None]
        return self._decode(tokens, start)
