"""Local checkpoints (``run --checkpoint DIR``): HF-layout Llama / Mistral / Qwen2 decoders.

DIR holds ``config.json`` and ``model.safetensors`` (or shards named by
``model.safetensors.index.json``). The config becomes the dense workload's shape params, the
tensors are renamed onto ``workloads.dense.DenseDecoder``'s parameter names and loaded with
``load_state_dict(strict=True)``, so every layer of the ladder applies to the real weights.
Nothing is downloaded. What the built-in dense model does not implement is refused with a
clear reason (e.g. Qwen3's q/k norms, MoE experts). A transformers-backed fallback for
those (used only when transformers is installed) is not written yet.

Handled beyond plain Llama: tied embeddings (``tie_word_embeddings``), Qwen2's q/k/v biases
(attached as ``bias`` parameters of the projections), Llama-3.1 ``rope_scaling``
("llama3" frequency scaling, written into the model's RoPE tables), Mistral's sliding window
(exact while the context stays within it; longer contexts are refused).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from workloads.errors import WorkbenchError

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DENSE_MODEL_TYPES = ("llama", "mistral", "qwen2")
BIAS_MODEL_TYPES = ("qwen2",)  # q/k/v projections carry a bias
CONFIG_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16",
                 "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

# HF name (after "model.") -> dense name; {i} is the decoder layer index.
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "mlp_norm.weight",
    "self_attn.q_proj.weight": "attn.q_proj.weight",
    "self_attn.k_proj.weight": "attn.k_proj.weight",
    "self_attn.v_proj.weight": "attn.v_proj.weight",
    "self_attn.o_proj.weight": "attn.o_proj.weight",
    "self_attn.q_proj.bias": "attn.q_proj.bias",
    "self_attn.k_proj.bias": "attn.k_proj.bias",
    "self_attn.v_proj.bias": "attn.v_proj.bias",
    "mlp.gate_proj.weight": "mlp.gate_proj.weight",
    "mlp.up_proj.weight": "mlp.up_proj.weight",
    "mlp.down_proj.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {"model.embed_tokens.weight": "embed", "model.norm.weight": "norm.weight",
              "lm_head.weight": "lm_head.weight"}
_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory).expanduser() / CONFIG_FILE
    if not Path(directory).expanduser().is_dir():
        raise WorkbenchError(f"checkpoint folder {directory} does not exist",
                             "give a local folder with config.json and *.safetensors")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbenchError(f"no {CONFIG_FILE} in checkpoint folder {directory}",
                             "the folder must use the Hugging Face layout") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise WorkbenchError(f"{path} is not a JSON object")
    return config


def unsupported_reason(config: dict[str, Any]) -> str | None:
    """Why the built-in dense model cannot hold this checkpoint (None when it can)."""
    model_type = config.get("model_type")
    if model_type not in DENSE_MODEL_TYPES:
        return (f"model_type {model_type!r} is not implemented by the built-in dense decoder "
                f"(supported: {', '.join(DENSE_MODEL_TYPES)})")
    heads = config.get("num_attention_heads")
    head_dim = config.get("head_dim")
    if head_dim is not None and heads and head_dim * heads != config.get("hidden_size"):
        return f"head_dim {head_dim} x {heads} heads != hidden_size (not implemented)"
    if config.get("hidden_act", "silu") != "silu":
        return f"hidden_act {config.get('hidden_act')!r} (only silu / SwiGLU is implemented)"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "attention_bias / mlp_bias (only Qwen2's q/k/v biases are implemented)"
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type")) if scaling else None
    if kind not in (None, "default", "llama3"):
        return f"rope_scaling type {kind!r} (only llama3 is implemented)"
    return None


def check_checkpoint(directory: str) -> str:
    """Validate in the front end (torch-free); returns the folder as an absolute path."""
    path = Path(directory).expanduser()
    config = read_config(path)
    tensor_files(path)
    reason = unsupported_reason(config)
    if reason:
        raise WorkbenchError(f"checkpoint not supported: {reason}")
    return str(path.resolve())


def checkpoint_params(config: dict[str, Any]) -> dict[str, Any]:
    """Dense shape params from an HF config (run params like batch stay the preset's)."""
    reason = unsupported_reason(config)
    if reason:
        raise WorkbenchError(f"checkpoint not supported: {reason}")
    try:
        params: dict[str, Any] = {
            "hidden": int(config["hidden_size"]),
            "layers": int(config["num_hidden_layers"]),
            "heads": int(config["num_attention_heads"]),
            "kv_heads": int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            "mlp": int(config["intermediate_size"]),
            "vocab": int(config["vocab_size"]),
            "rope_theta": float(config.get("rope_theta", 10000.0)),
            "norm_eps": float(config.get("rms_norm_eps", 1e-6)),
        }
    except KeyError as exc:
        raise WorkbenchError(f"checkpoint config.json lacks {exc.args[0]!r}") from None
    dtype = config.get("torch_dtype", config.get("dtype"))
    if dtype in CONFIG_DTYPES:
        params["dtype"] = CONFIG_DTYPES[dtype]
    return params


def context_limit(config: dict[str, Any]) -> int | None:
    """The longest context the checkpoint's math is exact for (None = unbounded)."""
    limits = [config.get("max_position_embeddings")]
    if config.get("model_type") == "mistral" or config.get("use_sliding_window"):
        limits.append(config.get("sliding_window"))
    known = [int(v) for v in limits if isinstance(v, int) and v > 0]
    return min(known) if known else None


def tensor_files(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = sorted({directory / name for name in weight_map.values()})
    elif (directory / SINGLE_FILE).is_file():
        files = [directory / SINGLE_FILE]
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise WorkbenchError(f"no *.safetensors in checkpoint folder {directory}",
                             "only safetensors checkpoints are read (no .bin / pickle)")
    missing = [str(f.name) for f in files if not f.is_file()]
    if missing:
        raise WorkbenchError(f"checkpoint shards missing: {', '.join(missing)}")
    return files


def dense_name(hf_name: str) -> str | None:
    """HF parameter name -> DenseDecoder state_dict name (None for tensors we skip)."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    match = _LAYER_KEY.match(hf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blocks.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None  # recomputed from rope_theta
    return "?" + hf_name


def hf_name(dense: str) -> str:
    """Inverse of ``dense_name`` (used to write checkpoints in HF layout)."""
    for hf, ours in _TOP_NAMES.items():
        if ours == dense:
            return hf
    match = re.match(r"^blocks\.(\d+)\.(.+)$", dense)
    if match:
        for hf, ours in _LAYER_NAMES.items():
            if ours == match.group(2):
                return f"model.layers.{match.group(1)}.{hf}"
    raise KeyError(dense)


def read_state_dict(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """All checkpoint tensors under dense names (memory-mapped until copied)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    unknown: list[str] = []
    for file in tensor_files(directory):
        for name, tensor in load_file(str(file)).items():
            ours = dense_name(name)
            if ours is None:
                continue
            if ours.startswith("?"):
                unknown.append(name)
                continue
            state[ours] = tensor
    if unknown:
        raise WorkbenchError(f"checkpoint tensors with no place in the dense model: "
                             f"{', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''}")
    if "lm_head.weight" not in state and "embed" in state and \
            config.get("tie_word_embeddings", False):
        state["lm_head.weight"] = state["embed"]
    return state


def load_into_dense(model: Any, directory: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """Copy the checkpoint into a built DenseDecoder; returns facts for result.json."""
    import torch
    from torch import nn

    directory = Path(directory).expanduser()
    state = read_state_dict(directory, config)
    biases = sorted(name for name in state if name.endswith(".bias"))
    for name in biases:  # Qwen2: give the bias-free projections a bias to load into
        module = model.get_submodule(name.rsplit(".", 1)[0])
        weight = module.weight
        module.bias = nn.Parameter(torch.zeros(weight.shape[0], device=weight.device,
                                               dtype=weight.dtype), requires_grad=False)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise WorkbenchError(
            "checkpoint does not match the dense model: "
            + (f"missing {', '.join(missing[:4])}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {', '.join(unexpected[:4])}" if unexpected else ""),
            "is the config.json the one these weights were saved with?")
    for name, tensor in state.items():
        target = model.get_parameter(name) if name in dict(model.named_parameters()) else None
        if target is not None and tuple(target.shape) != tuple(tensor.shape):
            raise WorkbenchError(f"checkpoint tensor {hf_name(name)} has shape "
                                 f"{tuple(tensor.shape)}, the config implies {tuple(target.shape)}")
    model.load_state_dict(state, strict=True)
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) == "llama3":
        _apply_llama3_rope(model, config)
    return {"checkpoint": str(directory), "model_type": config.get("model_type"),
            "architectures": config.get("architectures"), "tensors": len(state),
            "qkv_bias": bool(biases), "rope_scaling": scaling or None}


def _apply_llama3_rope(model: Any, config: dict[str, Any]) -> None:
    """Llama-3.1 frequency scaling (as HF's ``_compute_llama3_parameters``)."""
    import torch

    scaling = config["rope_scaling"]
    cos = model.rope_cos
    head_dim = cos.shape[-1]
    theta = float(config.get("rope_theta", 10000.0))
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=cos.device).float() / head_dim)
    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    inv_freq = torch.where(medium, smoothed, scaled)
    angles = torch.outer(torch.arange(cos.shape[0], device=cos.device).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    model.rope_cos, model.rope_sin = angles.cos(), angles.sin()


def prepare_params(directory: str, params: dict[str, Any], explicit: dict[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Preset params < checkpoint shape < the user's explicit params. Returns (params, config)."""
    config = read_config(directory)
    tensor_files(Path(directory).expanduser())
    merged = {**params, **checkpoint_params(config), **explicit}
    limit = context_limit(config)
    if limit is not None and merged.get("max_seq", 0) > limit:
        raise WorkbenchError(f"max_seq {merged['max_seq']} exceeds what the checkpoint supports "
                             f"({limit}: max_position_embeddings / sliding_window)")
    return merged, config


def load_checkpoint(workload: Any, directory: str, config: dict[str, Any]) -> dict[str, Any]:
    """Load into a built workload (the built-in dense one; others must expose ``load_hf``)."""
    loader = getattr(workload, "load_hf_checkpoint", None)
    if callable(loader):
        return dict(loader(directory, config) or {})
    model = getattr(workload, "model", None)
    if model is None or not hasattr(model, "blocks"):
        raise WorkbenchError(f"workload {workload.name!r} cannot load a checkpoint",
                             "use --workload dense")
    return load_into_dense(model, directory, config)


def write_checkpoint(model: Any, shape: dict[str, Any], directory: str | Path,
                     model_type: str = "llama", max_shard_bytes: int | None = None) -> Path:
    """Save a DenseDecoder in HF layout (config.json + safetensors, sharded with an index
    when ``max_shard_bytes`` is given): the inverse of ``load_into_dense``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {hf_name(name): t.detach().contiguous().cpu()
               for name, t in model.state_dict().items()}
    dtype = next(iter(tensors.values())).dtype
    config = {
        "architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                           "qwen2": "Qwen2ForCausalLM"}[model_type]],
        "model_type": model_type, "hidden_size": shape["hidden"],
        "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"], "intermediate_size": shape["mlp"],
        "vocab_size": shape["vocab"], "rope_theta": shape["rope_theta"],
        "rms_norm_eps": shape["norm_eps"], "max_position_embeddings": shape["max_seq"],
        "hidden_act": "silu", "tie_word_embeddings": False,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if not max_shard_bytes:
        save_file(tensors, str(directory / SINGLE_FILE), metadata={"format": "pt"})
        return directory
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map = {}
    for index, shard in enumerate(shards, start=1):
        file_name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / file_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file_name))
    index_text = json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2)
    (directory / INDEX_FILE).write_text(index_text + "\n", encoding="utf-8")
    return directory
