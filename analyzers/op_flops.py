"""FLOPs and minimum DRAM bytes of a CPU op from its recorded shapes (torch record_shapes).

Used where no counter says how much math a kernel did: a GEMM under ncu without the tensor
metrics, or a torch trace without ``with_flops`` figures. The bytes are the compulsory traffic
(each input read once, the output written once) — a lower bound, so the arithmetic intensity is
an upper bound. Unknown ops give (None, None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DTYPE_BYTES = {
    "c10::bfloat16": 2, "c10::half": 2, "bfloat16": 2, "half": 2, "float16": 2,
    "float": 4, "float32": 4, "double": 8, "float64": 8, "int": 4, "long int": 8,
    "c10::float8_e4m3fn": 1, "c10::float8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}

_MM = {"aten::mm", "aten::_scaled_mm", "aten::_int_mm"}
_SDPA = {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention",
         "aten::_scaled_dot_product_efficient_attention",
         "aten::_scaled_dot_product_cudnn_attention", "aten::_flash_attention_forward"}


def dtype_bytes(type_name: str | None) -> int | None:
    return DTYPE_BYTES.get((type_name or "").strip().lower())


def _prod(values: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in values))


def _bytes(dims: Sequence[Sequence[int]], out_elems: int, elem: int | None) -> float | None:
    if elem is None:
        return None
    return float((sum(_prod(d) for d in dims) + out_elems) * elem)


def op_cost(name: str, input_dims: Sequence[Sequence[int]],
            input_types: Sequence[str] | None = None,
            causal: bool = False) -> tuple[float | None, float | None]:
    """(flops, min_bytes) of one op call from its input shapes; None where not derivable."""
    dims = [list(d) if isinstance(d, (list, tuple)) else [] for d in input_dims]
    types = list(input_types or [])
    first_tensor = next((t for t, d in zip(types, dims, strict=False) if d), None)
    elem = dtype_bytes(first_tensor)
    try:
        if name in _MM and len(dims) >= 2 and len(dims[0]) == 2 and len(dims[1]) == 2:
            (m, k), (_, n) = dims[0], dims[1]
            return 2.0 * m * k * n, _bytes(dims[:2], m * n, elem)
        if name == "aten::addmm" and len(dims) >= 3 and len(dims[1]) == 2 and len(dims[2]) == 2:
            (m, k), (_, n) = dims[1], dims[2]
            return 2.0 * m * k * n, _bytes(dims[:3], m * n, dtype_bytes(types[1] if len(types) > 1 else None))
        if name in ("aten::bmm",) and len(dims) >= 2 and len(dims[0]) == 3:
            (b, m, k), n = dims[0], dims[1][-1]
            return 2.0 * b * m * k * n, _bytes(dims[:2], b * m * n, elem)
        if name == "aten::baddbmm" and len(dims) >= 3 and len(dims[1]) == 3:
            (b, m, k), n = dims[1], dims[2][-1]
            return 2.0 * b * m * k * n, _bytes(dims[:3], b * m * n, elem)
        if name == "aten::linear" and len(dims) >= 2 and dims[0] and len(dims[1]) == 2:
            n, k = dims[1]
            rows = _prod(dims[0][:-1])
            return 2.0 * rows * k * n, _bytes(dims[:3], rows * n, elem)
        if name == "aten::matmul" and len(dims) >= 2 and len(dims[0]) >= 2 and len(dims[1]) >= 2:
            m, k = dims[0][-2:]
            n = dims[1][-1]
            batch = max(_prod(dims[0][:-2]), _prod(dims[1][:-2]))
            return 2.0 * batch * m * k * n, _bytes(dims[:2], batch * m * n, elem)
        if name in _SDPA and len(dims) >= 3 and len(dims[0]) == 4 and len(dims[1]) == 4:
            b, h, seq_q, e = dims[0]
            seq_k = dims[1][2]
            ev = dims[2][-1] if dims[2] else e
            flops = 2.0 * b * h * seq_q * seq_k * (e + ev)  # QK^T and PV
            if causal:
                flops /= 2.0
            return flops, _bytes(dims[:3], b * h * seq_q * ev, elem)
    except (TypeError, ValueError):
        return None, None
    return None, None
