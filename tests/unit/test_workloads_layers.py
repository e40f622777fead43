"""Layer parsing, the layer registry, and requirement checks (CPU box)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workloads import catalog, layers, requirements
from workloads.errors import WorkbenchError
from workloads.layers import LayerOutcome, apply_layers

CPU = torch.device("cpu")


class FakeWorkload:
    name = "dense"
    compute_precision = "fp32"


def test_parse_layers_adds_l0_orders_and_expands_ranges():
    assert catalog.parse_layers("L1") == ["L0", "L1"]
    assert catalog.parse_layers("L1,L0,L1") == ["L0", "L1"]
    assert catalog.parse_layers("L0-L1") == ["L0", "L1"]
    assert catalog.parse_layers(["L1"]) == ["L0", "L1"]
    with pytest.raises(WorkbenchError, match="unknown layer"):
        catalog.parse_layers("L9")


def test_every_catalog_layer_has_an_apply_function():
    assert set(catalog.LAYERS) == set(layers.APPLY_FUNCTIONS)


def test_l0_then_l1_on_cpu_applied_with_note():
    outcomes: list[LayerOutcome] = []
    workload = FakeWorkload()
    apply_layers(["L0"], workload, CPU, outcomes)
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cuda.matmul.allow_tf32 is False
    apply_layers(["L1"], workload, CPU, outcomes)
    assert [o.to_dict() for o in outcomes] == [
        {"name": "L0", "applied": True, "reason": None},
        {"name": "L1", "applied": True, "reason": "no effect on CPU"},
    ]
    assert workload.compute_precision == "fp32"  # no TF32 on CPU
    apply_layers(["L0"], workload, CPU, [])  # leave the process in exact math for other tests


def test_unmet_requirement_is_recorded_and_fails_with_one_line(monkeypatch):
    needs_gpu = catalog.LayerInfo("LX", 1, "Needs a GPU", "test layer", requires=("cuda",))
    later = catalog.LayerInfo("LY", 2, "Later", "test layer")
    monkeypatch.setitem(catalog.LAYERS, "LX", needs_gpu)
    monkeypatch.setitem(catalog.LAYERS, "LY", later)
    monkeypatch.setitem(layers.APPLY_FUNCTIONS, "LX", lambda w, d: None)
    monkeypatch.setitem(layers.APPLY_FUNCTIONS, "LY", lambda w, d: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    outcomes: list[LayerOutcome] = []
    with pytest.raises(WorkbenchError) as raised:
        apply_layers(["LX", "LY"], FakeWorkload(), CPU, outcomes)
    assert "\n" not in str(raised.value)
    assert "layer LX (Needs a GPU) cannot run: needs a CUDA GPU" in str(raised.value)
    assert outcomes[0] == LayerOutcome("LX", False, "needs a CUDA GPU (none available)")
    assert outcomes[1] == LayerOutcome("LY", False, "not applied: LX failed")


def test_layer_for_another_workload_is_refused(monkeypatch):
    moe_only = dataclasses.replace(catalog.LAYERS["L1"], applies_to=("moe",))
    monkeypatch.setitem(catalog.LAYERS, "L1", moe_only)
    outcomes: list[LayerOutcome] = []
    with pytest.raises(WorkbenchError, match="does not apply to workload 'dense'"):
        apply_layers(["L1"], FakeWorkload(), CPU, outcomes)
    assert outcomes[0].applied is False


def test_requirements_on_a_cpu_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = requirements.facts_from_torch(CPU)
    assert requirements.unmet_reason("cuda", cpu) == "needs a CUDA GPU (none available)"
    assert "compute capability >= 8.9" in requirements.unmet_reason("cc>=8.9", cpu)
    assert requirements.unmet_reason("multi_gpu", cpu).startswith("needs 2 or more")
    assert requirements.unmet_reason("warp-drive", cpu) == "unknown requirement 'warp-drive'"
    assert requirements.unmet_reason("cc>=x", cpu) == "malformed requirement 'cc>=x'"
    assert requirements.unmet_reason("flex_attention", cpu) is None  # torch >= 2.5 has it
    assert requirements.first_unmet((), cpu) is None
    assert requirements.first_unmet(("flex_attention", "cuda"), cpu).startswith("needs a CUDA")


def test_compute_capability_compared_as_numbers(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert requirements.unmet_reason("cc>=8.9", requirements.facts_from_torch(cuda)) is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert requirements.unmet_reason("cc>=8.9", requirements.facts_from_torch(cuda)) == (
        "needs compute capability >= 8.9, this GPU is 8.0")
    cpu = requirements.facts_from_torch(CPU)
    assert requirements.unmet_reason("cuda", cpu) == "needs a CUDA GPU (run is on cpu)"
