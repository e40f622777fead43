"""FLOPs and DRAM bytes of one operator call from its argument shapes — torch-free.

Two callers describe the same call in the same terms: the child's operation inventory
(``workloads.inventory``, live tensors under a dispatch mode) and the analysis of an external
torch-profiler trace (the aten op's recorded "Input Dims" / "Input type" / "Concrete Inputs").
Both hand ``op_cost`` the schema's arguments in order, each a ``TensorArg``, a list of them
(a TensorList), or a plain value (bool / number / str / None).

What the figures mean:
- FLOPs: 2*M*N*K for a GEMM (a multiply-add is two); 2*B*H*pairs*(D + Dv) for attention,
  where pairs counts the (query, key) pairs the kernel computes (a causal kernel skips the
  upper triangle; a kernel given an explicit mask computes every pair); one per output element
  for element-wise math, one per input element for a reduction, 0 for pure data movement.
- Bytes: the compulsory DRAM traffic of the call on its own — each input read once, each output
  written once (an expanded input counts its stored elements only; a gather reads the rows it
  gathers, not the whole table; a scatter writes the rows it writes). A lower bound of what a
  kernel moves (a split-K GEMM also moves partial sums), so intensity is an upper bound.

Anything not derivable gives ``None`` — never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Element sizes by every spelling the two sources use (torch.dtype str, Kineto "Input type").
DTYPE_BYTES: dict[str, int] = {
    "torch.float64": 8, "double": 8, "float64": 8,
    "torch.float32": 4, "float": 4, "float32": 4,
    "torch.bfloat16": 2, "c10::bfloat16": 2, "bfloat16": 2,
    "torch.float16": 2, "c10::half": 2, "half": 2, "float16": 2,
    "torch.float8_e4m3fn": 1, "c10::float8_e4m3fn": 1, "float8_e4m3fn": 1,
    "torch.float8_e5m2": 1, "c10::float8_e5m2": 1, "float8_e5m2": 1,
    "torch.float8_e4m3fnuz": 1, "c10::float8_e4m3fnuz": 1,
    "torch.float8_e8m0fnu": 1, "c10::float8_e8m0fnu": 1,
    "torch.int64": 8, "long int": 8, "int64": 8, "long": 8,
    "torch.int32": 4, "int": 4, "int32": 4,
    "torch.int16": 2, "short int": 2, "torch.int8": 1, "signed char": 1, "torch.uint8": 1,
    "unsigned char": 1, "torch.bool": 1, "bool": 1,
}
_SHORT = {"torch.bfloat16": "bf16", "c10::bfloat16": "bf16", "bfloat16": "bf16",
          "torch.float16": "fp16", "c10::half": "fp16", "half": "fp16", "float16": "fp16",
          "torch.float32": "fp32", "float": "fp32", "float32": "fp32",
          "torch.float8_e4m3fn": "fp8", "c10::float8_e4m3fn": "fp8", "float8_e4m3fn": "fp8",
          "torch.float8_e5m2": "fp8", "c10::float8_e5m2": "fp8", "float8_e5m2": "fp8",
          "torch.int64": "i64", "long int": "i64", "torch.int32": "i32", "int": "i32",
          "torch.bool": "bool", "bool": "bool", "torch.int8": "i8", "torch.uint8": "u8",
          "torch.float64": "fp64", "double": "fp64"}

KINDS = ("gemm", "attention", "norm", "reduction", "elementwise", "copy", "gather", "scatter",
         "other")


def dtype_bytes(name: str | None) -> int | None:
    return DTYPE_BYTES.get((name or "").strip().lower()) if name else None


def short_dtype(name: str | None) -> str | None:
    """bf16 / fp16 / fp32 / fp8 / i64 ... (None when unknown)."""
    if not name:
        return None
    key = name.strip().lower()
    return _SHORT.get(key, key.removeprefix("torch.").removeprefix("c10::"))


@dataclass(frozen=True)
class TensorArg:
    """One tensor argument: its shape, dtype name and, where known, how many elements it
    really stores (an expanded tensor stores fewer than it has)."""

    shape: tuple[int, ...]
    dtype: str
    stored: int | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> float | None:
        size = dtype_bytes(self.dtype)
        count = self.stored if self.stored is not None else self.numel
        return None if size is None else float(count * size)


@dataclass(frozen=True)
class OpCost:
    kind: str
    flops: float | None
    bytes: float | None
    m: int | None = None  # GEMM rows (batch folded in for linear), N output columns, K depth
    n: int | None = None
    k: int | None = None
    batch: int | None = None  # GEMM batch / attention batch
    heads: int | None = None  # attention query heads (as the kernel sees them)
    kv_heads: int | None = None
    q_len: int | None = None
    kv_len: int | None = None
    head_dim: int | None = None
    causal: bool | None = None
    weight_bytes: float | None = None  # the linear's weight matrix (GEMM operand B)
    kv_bytes: float | None = None  # K and V read by attention
    dtype: str | None = None  # activation dtype (short)
    weight_dtype: str | None = None


Arg = TensorArg | list[TensorArg] | bool | int | float | str | None

# Attention ops: (is_causal argument index, layout of q/k/v). "bhsd" = [B, H, S, D];
# "bshd" = [B, S, H, D] (the flash / memory-efficient forward ops).
_ATTENTION: dict[str, tuple[int | None, str]] = {
    "aten::scaled_dot_product_attention": (5, "bhsd"),
    "aten::_scaled_dot_product_flash_attention": (4, "bhsd"),
    "aten::_scaled_dot_product_flash_attention_for_cpu": (4, "bhsd"),
    "aten::_scaled_dot_product_efficient_attention": (6, "bhsd"),
    "aten::_scaled_dot_product_cudnn_attention": (6, "bhsd"),
    "aten::_scaled_dot_product_fused_attention_overrideable": (6, "bhsd"),
    "aten::_cudnn_attention_forward": (10, "bhsd"),
    "aten::_flash_attention_forward": (8, "bshd"),
    "aten::_efficient_attention_forward": (None, "bshd"),
}
# Attention ops whose mask argument (index 3) makes the kernel compute every pair.
_MASK_ARG = {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_efficient_attention",
             "aten::_scaled_dot_product_cudnn_attention", "aten::_cudnn_attention_forward",
             "aten::_scaled_dot_product_fused_attention_overrideable"}
# GEMM op -> (index of A, index of B, B in nn.Linear layout [N, K] rather than [K, N])
_GEMM_OPERANDS: dict[str, tuple[int, int, bool]] = {
    "aten::mm": (0, 1, False), "aten::_int_mm": (0, 1, False), "aten::_scaled_mm": (0, 1, False),
    "aten::addmm": (1, 2, False), "aten::_addmm_activation": (1, 2, False),
    "aten::bmm": (0, 1, False), "aten::baddbmm": (1, 2, False), "aten::matmul": (0, 1, False),
    "aten::mv": (0, 1, False), "aten::addmv": (1, 2, False), "aten::dot": (0, 1, False),
    "aten::linear": (0, 1, True), "aiperf::gemv": (0, 1, True),
    "aten::_grouped_mm": (0, 1, False), "aten::_scaled_grouped_mm": (0, 1, False),
}
_COPY = {"aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous",
         "aten::cat", "aten::stack", "aten::_copy_from", "aten::repeat", "aten::flip",
         "aten::roll", "aten::constant_pad_nd", "aten::pad", "aten::reshape",
         "aten::repeat_interleave", "aten::_local_scalar_dense", "aten::tril", "aten::triu",
         "aten::_unsafe_view", "aten::expand_copy", "aten::lift_fresh_copy"}
_FILL = {"aten::fill_", "aten::zero_", "aten::zeros", "aten::ones", "aten::full",
         "aten::zeros_like", "aten::ones_like", "aten::full_like", "aten::arange",
         "aten::new_zeros", "aten::new_ones", "aten::new_full", "aten::scalar_tensor",
         "aten::masked_fill_", "aten::normal_", "aten::uniform_", "aten::randn",
         "aten::rand", "aten::randint", "aten::linspace"}
_GATHER = {"aten::embedding": (0, 1), "aten::index": (0, 1), "aten::index_select": (0, 2),
           "aten::gather": (0, 2), "aten::take": (0, 1)}  # op -> (table arg, index arg)
_SCATTER = {"aten::index_copy_": (3, 2, 2), "aten::index_copy": (3, 2, 2),
            "aten::index_put_": (2, 1, 2), "aten::index_put": (2, 1, 2),
            "aten::_index_put_impl_": (2, 1, 2), "aten::index_add_": (3, 2, 3),
            "aten::index_add": (3, 2, 3), "aten::scatter_": (3, 2, 2),
            "aten::scatter": (3, 2, 2), "aten::scatter_add_": (3, 2, 3),
            "aten::scatter_add": (3, 2, 3), "aten::masked_scatter_": (2, 1, 2)}
# op -> (source arg, index arg, how many times the source-sized rows cross DRAM)
_NORM = {"aten::native_layer_norm", "aten::layer_norm", "aten::rms_norm",
         "aten::_fused_rms_norm", "aten::native_group_norm", "aten::group_norm",
         "aten::native_batch_norm", "aten::batch_norm", "aten::_native_batch_norm_legit_no_training"}
_REDUCTION = {"aten::sum", "aten::mean", "aten::amax", "aten::amin", "aten::max", "aten::min",
              "aten::argmax", "aten::argmin", "aten::softmax", "aten::_softmax",
              "aten::log_softmax", "aten::_log_softmax", "aten::topk", "aten::sort",
              "aten::argsort", "aten::cumsum", "aten::prod", "aten::norm",
              "aten::linalg_vector_norm", "aten::var", "aten::std", "aten::var_mean",
              "aten::logsumexp", "aten::any", "aten::all", "aten::nonzero",
              "aten::bincount", "aten::histc", "aten::unique", "aten::_unique2",
              "aten::count_nonzero", "aten::multinomial"}


def canonical_name(name: str) -> str:
    """'aten.linear.default' / 'aten::linear' / 'aiperf.gemv.default' -> 'aten::linear'."""
    if "::" in name:
        return name.split(".")[0] if "." in name.split("::", 1)[1] else name
    parts = name.split(".")
    return f"{parts[0]}::{parts[1]}" if len(parts) >= 2 else name


def _tensors(args: list[Arg]) -> list[TensorArg]:
    out: list[TensorArg] = []
    for a in args:
        if isinstance(a, TensorArg):
            out.append(a)
        elif isinstance(a, list):
            out.extend(t for t in a if isinstance(t, TensorArg))
    return out


def _arg(args: list[Arg], index: int | None) -> Arg:
    return args[index] if index is not None and 0 <= index < len(args) else None


def _tensor(args: list[Arg], index: int) -> TensorArg | None:
    value = _arg(args, index)
    return value if isinstance(value, TensorArg) else None


def _sum_bytes(tensors: list[TensorArg | None]) -> float | None:
    total = 0.0
    for t in tensors:
        if t is None:
            continue
        b = t.nbytes
        if b is None:
            return None
        total += b
    return total


def _out_bytes(outputs: list[TensorArg] | None, elems: int, like: TensorArg | None,
               dtype: str | None = None) -> float | None:
    if outputs:
        return _sum_bytes(list(outputs))
    size = dtype_bytes(dtype or (like.dtype if like else None))
    return None if size is None else float(elems * size)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for i, d in enumerate(s[::-1]):
            j = rank - 1 - i
            out[j] = d if out[j] == 1 else out[j]
    return tuple(out)


def _truthy(value: Arg) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0", ""):
            return False
    return None


def _gemm(name: str, args: list[Arg], outputs: list[TensorArg] | None,
          extra: dict[str, float]) -> OpCost | None:
    a_index, b_index, linear_layout = _GEMM_OPERANDS[name]
    a, b = _tensor(args, a_index), _tensor(args, b_index)
    if a is None or b is None or not a.shape or not b.shape:
        return None
    sa = a.shape if len(a.shape) >= 2 else (1, *a.shape)
    sb = b.shape if len(b.shape) >= 2 else (*b.shape, 1)
    if linear_layout:  # B is [N, K] (nn.Linear's weight)
        if len(sb) != 2:
            return None
        sb = (sb[1], sb[0])
    grouped = name in ("aten::_grouped_mm", "aten::_scaled_grouped_mm")
    if grouped and (len(sa) != 2 or len(sb) != 3):
        return None  # only the MoE case (2-D token rows x 3-D stacked experts) is modelled
    k, n = sa[-1], sb[-1]
    if sb[-2] != k:
        return None
    if name == "aten::linear" or grouped:
        m, batch = math.prod(sa[:-1]), 1
    else:
        m, batch = sa[-2], math.prod(_broadcast([sa[:-2], sb[:-2]]))
    weight_bytes: float | None = None
    if len(b.shape) == 2:  # a fixed matrix: the weight a linear streams
        weight_bytes = b.nbytes
    elif grouped and b.nbytes is not None:  # only the experts that got rows are read
        groups = b.shape[0]
        weight_bytes = b.nbytes / groups * min(groups, int(extra.get("active_groups", groups)))
    flops = 2.0 * batch * m * n * k
    others = _sum_bytes([x for x in _tensors(args) if x is not b])
    b_bytes = weight_bytes if weight_bytes is not None else b.nbytes
    out = _out_bytes(outputs, batch * m * n, a)
    total = None if others is None or b_bytes is None or out is None else others + b_bytes + out
    return OpCost("gemm", flops, total, m=m, n=n, k=k, batch=batch,
                  weight_bytes=weight_bytes, dtype=short_dtype(a.dtype),
                  weight_dtype=short_dtype(b.dtype))


def _attention(name: str, args: list[Arg], outputs: list[TensorArg] | None) -> OpCost | None:
    causal_index, layout = _ATTENTION[name]
    q, k, v = _tensor(args, 0), _tensor(args, 1), _tensor(args, 2)
    if name == "aten::_efficient_attention_forward":
        v = None  # (query, key, bias, ...): V is not an argument of this op
    if q is None or k is None or len(q.shape) != 4 or len(k.shape) != 4:
        return None
    if layout == "bhsd":
        batch, heads, q_len, d = q.shape
        kv_heads, kv_len = k.shape[1], k.shape[2]
    else:
        batch, q_len, heads, d = q.shape
        kv_len, kv_heads = k.shape[1], k.shape[2]
    dv = v.shape[-1] if v is not None and len(v.shape) == 4 else d
    masked = name in _MASK_ARG and isinstance(_arg(args, 3), TensorArg)
    causal = _truthy(_arg(args, causal_index)) if causal_index is not None else None
    if name == "aten::_efficient_attention_forward":
        mask_type = _arg(args, 8)
        causal = None if mask_type is None else _truthy(mask_type)
    if causal and not masked:
        if q_len <= kv_len:
            pairs = q_len * (q_len + 1) / 2.0
        else:
            pairs = kv_len * (kv_len + 1) / 2.0 + (q_len - kv_len) * kv_len
    else:
        pairs = float(q_len * kv_len)
    flops = 2.0 * batch * heads * pairs * (d + dv)
    kv_bytes = _sum_bytes([k, v]) if v is not None else (
        2 * k.nbytes if k.nbytes is not None else None)
    mask = _tensor(args, 3) if masked else None
    q_bytes = _sum_bytes([q, mask])
    out = _out_bytes(outputs[:1] if outputs else None, batch * heads * q_len * dv, q)
    total = None if None in (kv_bytes, q_bytes, out) else kv_bytes + q_bytes + out  # type: ignore[operator]
    return OpCost("attention", flops, total, batch=batch, heads=heads, kv_heads=kv_heads,
                  q_len=q_len, kv_len=kv_len, head_dim=d,
                  causal=causal if causal_index is not None or causal is not None else None,
                  kv_bytes=kv_bytes, dtype=short_dtype(q.dtype))


def _decode_attention(args: list[Arg], outputs: list[TensorArg] | None,
                      extra: dict[str, float]) -> OpCost | None:
    """L3's split-KV decode (``aiperf::decode_attention(q [B, H, D], k_cache, v_cache,
    positions, block_table, kv_scale, window)``): each query head attends to the live keys of
    its sequence. The live length comes from the call (``extra["kv_len"]``, read from the
    positions in the child); without it (fake tensors) the cache's capacity bounds it."""
    q, k = _tensor(args, 0), _tensor(args, 1)
    block_table = _tensor(args, 4)
    if q is None or k is None or len(q.shape) != 3:
        return None
    batch, heads, d = q.shape
    if block_table is not None:  # [blocks, block_size, kv_heads, D] behind a [B, blocks_per_seq] table
        kv_heads, capacity = k.shape[2], block_table.shape[1] * k.shape[1]
    else:  # [B, kv_heads, max_seq, D]
        kv_heads, capacity = k.shape[1], k.shape[2]
    kv_len = int(extra.get("kv_len") or capacity)
    window = _arg(args, 6)
    if isinstance(window, (int, float)) and window and window > 0:
        kv_len = min(kv_len, int(window))
    elem = dtype_bytes(k.dtype) or 2
    kv_bytes = float(2 * batch * kv_heads * kv_len * d * elem)
    q_out = float(2 * batch * heads * d * (dtype_bytes(q.dtype) or 2))
    flops = 2.0 * batch * heads * kv_len * (d + d)
    return OpCost("attention", flops, kv_bytes + q_out, batch=batch, heads=heads,
                  kv_heads=kv_heads, q_len=1, kv_len=kv_len, head_dim=d, causal=None,
                  kv_bytes=kv_bytes, dtype=short_dtype(q.dtype))


def op_cost(name: str, args: list[Arg], outputs: list[TensorArg] | None = None,
            extra: dict[str, float] | None = None) -> OpCost:
    """The cost of one call of ``name`` (any spelling, see ``canonical_name``).

    ``args``: the schema's arguments in order. ``outputs``: the output tensors when known (the
    inventory); without them (a trace) GEMM and attention outputs follow from the inputs and
    an element-wise output is taken as the broadcast of its inputs. ``extra``: facts only the
    live call knows (``active_groups`` of a grouped GEMM: experts that got tokens).
    """
    op = canonical_name(name)
    extra = extra or {}
    try:
        if op in _GEMM_OPERANDS:
            gemm = _gemm(op, args, outputs, extra)
            return gemm or OpCost("gemm", None, None)
        if op in _ATTENTION:
            return _attention(op, args, outputs) or OpCost("attention", None, None)
        if op == "aiperf::decode_attention":
            return _decode_attention(args, outputs, extra) or OpCost("attention", None, None)
        return _data_op(op, args, outputs)
    except (TypeError, ValueError, IndexError, OverflowError):
        return OpCost("other", None, None)


def _data_op(op: str, args: list[Arg], outputs: list[TensorArg] | None) -> OpCost:
    if op == "aten::where" and len([a for a in args if a is not None]) == 1:
        op = "aten::nonzero"  # where(cond) is nonzero; where(cond, x, y) is element-wise
    tensors = _tensors(args)
    dtype = short_dtype(tensors[0].dtype) if tensors else (
        short_dtype(outputs[0].dtype) if outputs else None)
    if op in _GATHER:
        return _gather(op, args, outputs, dtype)
    if op in _SCATTER:
        source_i, index_i, times = _SCATTER[op]
        source, index = _arg(args, source_i), _arg(args, index_i)
        indices = index if isinstance(index, list) else [index]
        idx = [i for i in indices if isinstance(i, TensorArg)]
        if not isinstance(source, TensorArg):
            return OpCost("scatter", None, None, dtype=dtype)
        src_bytes, idx_bytes = source.nbytes, _sum_bytes(list(idx))
        total = None if src_bytes is None or idx_bytes is None else times * src_bytes + idx_bytes
        return OpCost("scatter", float(source.numel) if times == 3 else 0.0, total, dtype=dtype)
    if op in _FILL:
        target = outputs or ([tensors[0]] if op.endswith("_") and tensors else [])
        out_bytes = _sum_bytes(list(target)) if target else None
        return OpCost("copy", 0.0, out_bytes, dtype=dtype)
    shape_out = _broadcast([t.shape for t in tensors]) if tensors else ()
    if op == "aten::copy_" and len(tensors) >= 2:
        return OpCost("copy", 0.0, _sum_bytes([tensors[1], tensors[0]]), dtype=dtype)
    in_bytes = _sum_bytes(list(tensors))
    if op.endswith("_") and tensors:  # in place: the output is the first argument
        out = tensors[0].nbytes
    elif outputs is not None:
        out = _sum_bytes(list(outputs))
    elif op in _REDUCTION:
        out = _reduction_out_bytes(op, args)  # from its dim arguments, where it has them
    else:
        # type promotion: the output takes the widest input type (a bool mask does not count)
        widest = max((t for t in tensors if short_dtype(t.dtype) != "bool"),
                     key=lambda t: dtype_bytes(t.dtype) or 0, default=None)
        out = _out_bytes(None, math.prod(shape_out), widest or (tensors[0] if tensors else None))
    total = None if in_bytes is None or out is None else in_bytes + out
    if op in _COPY:
        return OpCost("copy", 0.0, total, dtype=dtype)
    if op in _NORM:
        return OpCost("norm", 5.0 * tensors[0].numel if tensors else None, total, dtype=dtype)
    if op in _REDUCTION:
        return OpCost("reduction", float(tensors[0].numel) if tensors else None, total,
                      dtype=dtype)
    if not tensors and not outputs:
        return OpCost("other", None, None)
    elems = sum(o.numel for o in outputs) if outputs else math.prod(shape_out)
    return OpCost("elementwise", float(elems), total, dtype=dtype)


_SAME_SHAPE = {"aten::softmax", "aten::_softmax", "aten::log_softmax", "aten::_log_softmax",
               "aten::cumsum"}
_INDEX_OUT = {"aten::argmax", "aten::argmin"}
_BOOL_OUT = {"aten::any", "aten::all"}


def _dims(value: Arg, rank: int) -> list[int] | None:
    """Dimensions named by a reduction's ``dim`` argument (int, list, or a trace's "[-1]")."""
    named: list[int]
    if isinstance(value, str) and value.startswith("["):
        try:
            named = [int(v) for v in value.strip("[]").split(",") if v.strip()]
        except ValueError:
            return None
    elif isinstance(value, int) and not isinstance(value, bool):
        named = [value]
    elif isinstance(value, list) and all(isinstance(v, int) for v in value):
        named = [v for v in value if isinstance(v, int)]
    else:
        return None
    return [v % rank for v in named] if rank else []


def _reduction_out_bytes(op: str, args: list[Arg]) -> float | None:
    """Output bytes of a reduction called without its outputs known (a trace): the input with
    the reduced dimensions removed; softmax-like ops keep the shape; topk keeps k."""
    x = _tensor(args, 0)
    if x is None or x.nbytes is None:
        return None
    if op in _SAME_SHAPE:
        return x.nbytes
    rank = len(x.shape)
    if op == "aten::topk":
        k, dims = _arg(args, 1), _dims(_arg(args, 2) if len(args) > 2 else -1, rank)
        if not isinstance(k, int) or not dims or not x.shape[dims[0]]:
            return None
        elems = x.numel // x.shape[dims[0]] * k
        return float(elems * ((dtype_bytes(x.dtype) or 0) + 8))  # values and int64 indices
    if op not in {"aten::sum", "aten::mean", "aten::amax", "aten::amin", "aten::max",
                  "aten::min", "aten::prod", "aten::logsumexp", "aten::any", "aten::all",
                  "aten::argmax", "aten::argmin"}:
        return None
    dims = list(range(rank)) if len(args) < 2 or args[1] is None else _dims(args[1], rank)
    if dims is None:
        return None
    elems = math.prod(s for i, s in enumerate(x.shape) if i not in dims)
    size = 8 if op in _INDEX_OUT else 1 if op in _BOOL_OUT else dtype_bytes(x.dtype)
    return None if size is None else float(elems * size)


def _gather(op: str, args: list[Arg], outputs: list[TensorArg] | None,
            dtype: str | None) -> OpCost:
    """A gather reads the rows it picks (and the indices) and writes them once."""
    table_i, index_i = _GATHER[op]
    table, index = _tensor(args, table_i), _arg(args, index_i)
    if op == "aten::embedding":
        table, index = _tensor(args, 0), _tensor(args, 1)
    indices = [i for i in (index if isinstance(index, list) else [index])
               if isinstance(i, TensorArg)]
    if table is None or not indices:
        return OpCost("gather", 0.0, None, dtype=dtype)
    if outputs:
        out = _sum_bytes(list(outputs))
    elif op in ("aten::embedding", "aten::index") and len(indices) == 1:
        row = math.prod(table.shape[1:]) if op == "aten::index" else table.shape[-1]
        out = _out_bytes(None, indices[0].numel * row, table)
    elif op == "aten::index_select" and isinstance(_arg(args, 1), int):
        dim = int(_arg(args, 1))  # type: ignore[arg-type]
        shape = list(table.shape)
        shape[dim] = indices[0].numel
        out = _out_bytes(None, math.prod(shape), table)
    elif op in ("aten::gather", "aten::take"):
        out = _out_bytes(None, indices[0].numel, table)
    else:
        out = None
    idx_bytes = _sum_bytes(list(indices))
    total = None if out is None or idx_bytes is None else 2 * out + idx_bytes
    return OpCost("gather", 0.0, total, dtype=dtype)
