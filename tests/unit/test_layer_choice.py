"""The layer a finding names: as `workloads` prints it, applicable, never already present."""

from analyzers.layer_choice import REMEDY_LAYERS, has_remedy, layer_for
from workloads.catalog import LAYERS


def test_every_remedy_names_catalog_layers():
    for layers in REMEDY_LAYERS.values():
        assert layers and all(name in LAYERS for name in layers)


def test_dense_gets_cuda_graphs_unless_it_has_them():
    assert layer_for("cuda_graphs", "dense") == "L4"
    assert layer_for("cuda_graphs", "dense", present=["L0", "L2", "L3", "L4"]) is None
    assert has_remedy("cuda_graphs", ["L0", "L4"])


def test_fp8_names_the_workloads_own_fp8_layer():
    assert layer_for("fp8_weights", "dense") == "L5-fp8"
    assert layer_for("fp8_weights", "moe") == "L5-moe-fp8"
    assert layer_for("fp8_weights", "moe", present=["L0", "L5-moe-fp8"]) is None


def test_no_layer_that_the_workload_or_device_cannot_take():
    for workload in ("moe", "gptoss", "dense"):
        for remedy in REMEDY_LAYERS:
            name = layer_for(remedy, workload)
            if name is not None:
                applies = LAYERS[name].applies_to
                assert not applies or workload in applies
    assert layer_for("cuda_graphs", "dense", device_kind="cpu") is None
