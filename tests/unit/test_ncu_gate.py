"""Nsight Compute's sampled scope on every rung: the gate's hooks open the profiler range around
one decoder block, also inside a torch.compile'd step, without recompiling when it opens
(a recompile inside the range would hand ncu the autotuner's benchmark kernels)."""

from __future__ import annotations

import pytest
import torch

from workloads.measure import ProfilerGate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Stack(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = torch.relu(block(x))
        return x


def _gate(model: Stack, calls: list[str]) -> ProfilerGate:
    return ProfilerGate([(model.blocks[-1], model.blocks[-1])],
                        start=lambda: calls.append("start"), stop=lambda: calls.append("stop"))


def test_gate_fires_only_while_open_in_eager_code():
    model, calls = Stack(), []
    gate = _gate(model, calls)
    model(torch.randn(2, 8))
    assert calls == []
    with gate.open():
        model(torch.randn(2, 8))
    assert calls == ["start", "stop"] and gate.opened == 1
    gate.remove()
    with gate.open():
        model(torch.randn(2, 8))
    assert calls == ["start", "stop"]


def test_gate_installed_before_compile_fires_in_compiled_code_without_recompiling():
    model, calls = Stack(), []
    gate = _gate(model, calls)
    compilations = []

    def counting_backend(graph_module, example_inputs):
        compilations.append(len(graph_module.graph.nodes))
        return torch._dynamo.backends.debugging.aot_eager(graph_module, example_inputs)

    torch._dynamo.reset()
    # fullgraph: a graph break inside the block loop would make Dynamo run the step eagerly
    compiled = torch.compile(model, backend=counting_backend, fullgraph=True)
    x = torch.randn(2, 8)
    expected = model(x)
    torch.testing.assert_close(compiled(x), expected)  # the warm-up: compiles, gate shut
    compiled_once = len(compilations)
    assert compiled_once >= 1 and calls == []
    with gate.open():
        out = compiled(x)
    torch.testing.assert_close(out, expected)
    assert calls == ["start", "stop"], "the range calls must run inside the compiled step"
    assert len(compilations) == compiled_once, "opening the gate must not recompile"
    torch._dynamo.reset()
