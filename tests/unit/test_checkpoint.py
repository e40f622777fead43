"""Local HF-layout checkpoints: written from a dense model with random weights, loaded into a
differently-seeded one, the logits must be the same (bit for bit on CPU fp32)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from workloads import checkpoint
from workloads.catalog import get_preset
from workloads.dense import DenseDecoder, resolve_shape
from workloads.errors import WorkbenchError

CPU = torch.device("cpu")


def _shape(**overrides) -> dict:
    return resolve_shape({**get_preset("dense", "tiny"), **overrides})


def _logits(model: DenseDecoder, seed: int = 7) -> torch.Tensor:
    tokens = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(tokens, 0, all_logits=True)


@pytest.mark.parametrize("shard_bytes", [None, 200_000])
def test_checkpoint_round_trip_gives_the_same_logits(tmp_path: Path, shard_bytes) -> None:
    shape = _shape()
    writer = DenseDecoder(shape, CPU, torch.float32, seed=1).eval()
    checkpoint.write_checkpoint(writer, shape, tmp_path, max_shard_bytes=shard_bytes)
    if shard_bytes:
        assert (tmp_path / checkpoint.INDEX_FILE).is_file()
        assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    # HF names on disk, e.g. model.layers.1.self_attn.q_proj.weight
    names = set()
    for file in checkpoint.tensor_files(tmp_path):
        names |= set(load_file(str(file)))
    assert "model.layers.1.self_attn.q_proj.weight" in names and "lm_head.weight" in names

    config = checkpoint.read_config(tmp_path)
    params, _ = checkpoint.prepare_params(str(tmp_path), get_preset("dense", "tiny"), {})
    reader = DenseDecoder(resolve_shape(params), CPU, torch.float32, seed=2).eval()
    assert not torch.equal(_logits(reader), _logits(writer))  # the seeds really differ
    facts = checkpoint.load_into_dense(reader, tmp_path, config)
    assert facts["tensors"] == len(writer.state_dict())
    torch.testing.assert_close(_logits(reader), _logits(writer), rtol=0, atol=0)


def test_config_maps_onto_dense_params_and_user_params_win(tmp_path: Path) -> None:
    shape = _shape(hidden=64, heads=4, kv_heads=1, mlp=96, vocab=300, layers=3)
    checkpoint.write_checkpoint(DenseDecoder(shape, CPU, torch.float32, 0), shape, tmp_path)
    params, config = checkpoint.prepare_params(str(tmp_path), get_preset("dense", "tiny"),
                                               {"batch": 1})
    assert (params["hidden"], params["layers"], params["kv_heads"], params["vocab"]) == \
        (64, 3, 1, 300)
    assert params["batch"] == 1 and params["dtype"] == "float32"
    assert config["model_type"] == "llama"


def test_tied_embeddings_and_bf16_conversion(tmp_path: Path) -> None:
    shape = _shape()
    writer = DenseDecoder(shape, CPU, torch.float32, seed=3).eval()
    with torch.no_grad():
        writer.lm_head.weight.copy_(writer.embed)
    checkpoint.write_checkpoint(writer, shape, tmp_path)
    tensors = load_file(str(tmp_path / checkpoint.SINGLE_FILE))
    del tensors["lm_head.weight"]
    save_file(tensors, str(tmp_path / checkpoint.SINGLE_FILE))
    config = json.loads((tmp_path / "config.json").read_text())
    config["tie_word_embeddings"] = True
    (tmp_path / "config.json").write_text(json.dumps(config))
    reader = DenseDecoder(shape, CPU, torch.bfloat16, seed=4).eval()
    checkpoint.load_into_dense(reader, tmp_path, config)
    assert reader.lm_head.weight.dtype == torch.bfloat16
    torch.testing.assert_close(reader.lm_head.weight.float(), writer.embed.bfloat16().float())


def test_qwen2_biases_are_loaded_and_used(tmp_path: Path) -> None:
    shape = _shape()
    writer = DenseDecoder(shape, CPU, torch.float32, seed=5).eval()
    checkpoint.write_checkpoint(writer, shape, tmp_path, model_type="qwen2")
    tensors = load_file(str(tmp_path / checkpoint.SINGLE_FILE))
    bias = torch.randn(shape["hidden"], generator=torch.Generator().manual_seed(0))
    tensors["model.layers.0.self_attn.q_proj.bias"] = bias
    save_file(tensors, str(tmp_path / checkpoint.SINGLE_FILE))
    reader = DenseDecoder(shape, CPU, torch.float32, seed=6).eval()
    facts = checkpoint.load_into_dense(reader, tmp_path, checkpoint.read_config(tmp_path))
    assert facts["qkv_bias"] is True
    assert torch.equal(reader.blocks[0].attn.q_proj.bias, bias)
    writer.blocks[0].attn.q_proj.bias = torch.nn.Parameter(bias, requires_grad=False)
    torch.testing.assert_close(_logits(reader), _logits(writer), rtol=0, atol=0)
    # L2 fuses q/k/v into one projection: the bias must come along (it once did not)
    before = _logits(reader)
    for block in reader.blocks:
        block.attn.fuse()
    torch.testing.assert_close(_logits(reader), before, rtol=1e-5, atol=1e-5)


def test_llama3_rope_scaling_changes_only_long_wavelengths(tmp_path: Path) -> None:
    shape = _shape(max_seq=64)
    writer = DenseDecoder(shape, CPU, torch.float32, seed=1).eval()
    checkpoint.write_checkpoint(writer, shape, tmp_path)
    config = checkpoint.read_config(tmp_path)
    config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    before = writer.rope_cos.clone()
    checkpoint.load_into_dense(writer, tmp_path, config)
    half = shape["hidden"] // shape["heads"] // 2
    # wavelength 2*pi << 8192/4: kept; the slowest one (>> 8192) is divided by the factor
    assert torch.equal(writer.rope_cos[:, 0], before[:, 0])
    slowest = 1.0 / shape["rope_theta"] ** ((2 * half - 2) / (2 * half)) / 8.0
    expected = torch.cos(torch.arange(64).float() * torch.tensor(slowest).float())
    torch.testing.assert_close(writer.rope_cos[:, half - 1], expected)
    assert not torch.equal(writer.rope_cos[:, half - 1], before[:, half - 1])


@pytest.mark.parametrize("change,needle", [
    ({"model_type": "qwen3_moe"}, "model_type 'qwen3_moe'"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"head_dim": 64}, "head_dim"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
])
def test_unsupported_configs_are_refused_with_a_reason(tmp_path: Path, change, needle) -> None:
    shape = _shape()
    checkpoint.write_checkpoint(DenseDecoder(shape, CPU, torch.float32, 0), shape, tmp_path)
    config = {**checkpoint.read_config(tmp_path), **change}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorkbenchError, match=needle):
        checkpoint.prepare_params(str(tmp_path), get_preset("dense", "tiny"), {})


def test_missing_pieces_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="does not exist"):
        checkpoint.check_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(WorkbenchError, match="no config.json"):
        checkpoint.check_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WorkbenchError, match="no \\*.safetensors"):
        checkpoint.check_checkpoint(str(tmp_path))


def test_wrong_shapes_and_stray_tensors_are_refused(tmp_path: Path) -> None:
    shape = _shape()
    checkpoint.write_checkpoint(DenseDecoder(shape, CPU, torch.float32, 0), shape, tmp_path)
    tensors = load_file(str(tmp_path / checkpoint.SINGLE_FILE))
    tensors["model.layers.0.mlp.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / checkpoint.SINGLE_FILE))
    config = checkpoint.read_config(tmp_path)
    with pytest.raises(WorkbenchError, match="no place in the dense model"):
        checkpoint.load_into_dense(DenseDecoder(shape, CPU, torch.float32, 0), tmp_path, config)
    smaller = _shape(mlp=256)
    with pytest.raises(WorkbenchError):
        checkpoint.load_into_dense(DenseDecoder(smaller, CPU, torch.float32, 0), tmp_path,
                                   config)
