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


def test_gate_fires_on_the_fused_norm_decoder(monkeypatch):
    """L5-gemv / L5-fp8 run each block's fused forward; it must still be a module call, or
    the sampled block's gate never opens (the FP8 stack's ncu run on an H200 failed so)."""
    from workloads import catalog, dense
    from workloads.layers.attention import apply_attention
    from workloads.layers.lowbit import apply_gemv
    from workloads.layers.memory import apply_memory

    cpu = torch.device("cpu")
    workload = dense.DenseWorkload()
    workload.build(cpu, torch.bfloat16, {**catalog.get_preset("dense", "tiny"), "layers": 4},
                   seed=0)
    apply_memory(workload, cpu)
    apply_attention(workload, cpu)
    apply_gemv(workload, cpu)
    assert workload.model.fused_norms
    sample = workload.profile_sample()
    calls: list[str] = []
    gate = ProfilerGate(sample.spans, start=lambda: calls.append("start"),
                        stop=lambda: calls.append("stop"))
    inputs = workload.make_inputs(0)
    workload.prepare(inputs)
    with torch.inference_mode(), gate.open():
        workload.step(inputs)
    gate.remove()
    assert gate.opened == 1 and calls == ["start", "stop"]
