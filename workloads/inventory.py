"""One step's operation inventory: what the step computes, op by op, in launch order.

The torch profiler gives kernel names and times but no FLOPs or bytes, and inside CUDA graphs
(L4) or compiled code (L5) its kernels have no parent op whose shapes would say. The child
therefore runs one more step *eagerly* under a ``TorchDispatchMode`` that logs every operator
that launches work — aten ops and our custom ops (``torch.ops.aiperf.gemv``, bf16 or FP8
weights) — with its shapes and dtypes, and costs each with ``workloads.op_cost``. The analysis
later matches the profiled kernels to it by launch order (``analyzers.inventory_match``).

Eager because a graph replay dispatches nothing and compiled code fuses ops out of sight:
where a ``DecodeRuntime`` (the dense decoder's) graphs or compiles the step, the inventory
step swaps in an eager twin with the same model, cache and static-shape setting, so the same
weights, layers (fused projections, GEMV / FP8 linears, SDPA) and shapes run op by op. The
workload's state is the profiled step's (``reset()`` first), so data-dependent work (MoE
routing) is the same too.

Stored in result.json ``details.inventory`` in the compact columnar form of
``workloads.inventory_format``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from workloads.inventory_format import INVENTORY_VERSION, encode
from workloads.op_cost import OpCost, TensorArg, canonical_name, op_cost

# Steps far longer than a decode (a whole generation) are cut here: memory stays bounded and
# the analysis says the inventory is partial instead of matching part of it.
MAX_OPS = 100_000
# Ops that launch nothing: allocation, aliasing and bookkeeping.
_NO_WORK = {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty",
            "aten::new_empty_strided", "aten::detach", "aten::alias", "aten::lift_fresh",
            "aten::resolve_conj", "aten::resolve_neg", "aten::record_stream", "aten::set_",
            "aten::_unsafe_view", "aten::sym_size", "aten::sym_stride", "aten::sym_numel",
            "aten::is_same_size", "aten::_has_compatible_shallow_copy_type",
            "aten::_nested_tensor_from_mask_left_aligned"}
_GROUPED = {"aten::_grouped_mm", "aten::_scaled_grouped_mm"}


def _stored(t: torch.Tensor) -> int | None:
    """Elements really stored: an expanded (stride 0) dimension repeats, it is not read again."""
    try:
        return math.prod(s for s, st in zip(t.shape, t.stride(), strict=True) if st != 0)
    except (RuntimeError, TypeError):
        return None


def _tensor_arg(t: torch.Tensor) -> TensorArg:
    stored = _stored(t)
    return TensorArg(tuple(int(s) for s in t.shape), str(t.dtype),
                     stored if stored is not None and stored != t.numel() else None)


def _describe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return _tensor_arg(value)
    if isinstance(value, list | tuple) and any(isinstance(v, torch.Tensor) for v in value):
        return [_tensor_arg(v) for v in value if isinstance(v, torch.Tensor)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _storage_key(t: torch.Tensor) -> int | None:
    try:
        return int(t.untyped_storage()._cdata)
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _flat_tensors(v)]
    return []


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake

    return bool(is_fake(t)) or t.device.type == "meta"


class OpRecorder(TorchDispatchMode):
    """Logs (name, cost) of every dispatched op that launches work, in call order."""

    def __init__(self, limit: int = MAX_OPS) -> None:
        super().__init__()
        self.calls: list[tuple[str, OpCost]] = []
        self.limit = limit
        self.truncated = False
        self.unrecorded = 0  # ops whose description failed (kept going: the step matters more)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._record(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 - describing an op must never break the step
            self.unrecorded += 1
        return out

    def _record(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        schema = func._schema
        name = canonical_name(schema.name)
        if name.startswith("prim::") or name in _NO_WORK:
            return
        if len(self.calls) >= self.limit:
            self.truncated = True
            return
        arguments = list(schema.arguments)
        values = list(args) + [kwargs.get(a.name, a.default_value if a.has_default_value()
                                          else None) for a in arguments[len(args):]]
        mutates = any(a.alias_info is not None and a.alias_info.is_write for a in arguments)
        outputs = _flat_tensors(out)
        if not mutates and outputs:
            inputs = {_storage_key(t) for t in _flat_tensors(values)} - {None}
            if any(_storage_key(t) in inputs for t in outputs):
                return  # a view, or a conversion that had nothing to do: no kernel
        extra: dict[str, float] = {}
        if name in _GROUPED:
            extra = _active_groups(arguments, values)
        elif name in _DECODE_ATTENTION:
            extra = _live_keys(arguments, values)
        cost = op_cost(name, [_describe(v) for v in values],
                       [_tensor_arg(t) for t in outputs] or None, extra)
        self.calls.append((name, cost))


def _active_groups(arguments: list[Any], values: list[Any]) -> dict[str, float]:
    """Experts that got rows in a grouped GEMM (only they are read): from ``offs``."""
    for argument, value in zip(arguments, values, strict=False):
        if argument.name == "offs" and isinstance(value, torch.Tensor) and not _is_fake(value):
            ends = value.detach().to("cpu", torch.int64).tolist()
            counts = [b - a for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            return {"active_groups": float(sum(1 for c in counts if c > 0))}
    return {}


_DECODE_ATTENTION = {"aiperf.decode_attention.default", "aiperf::decode_attention"}


def _live_keys(arguments: list[Any], values: list[Any]) -> dict[str, float]:
    """The keys a decode attention call reads: the longest live sequence (positions + 1) — the
    cache's capacity is an upper bound the kernel never reads (8,448 slots for 129 live keys)."""
    for argument, value in zip(arguments, values, strict=False):
        if argument.name == "positions" and isinstance(value, torch.Tensor) \
                and not _is_fake(value) and value.numel():
            return {"kv_len": float(int(value.detach().max().item()) + 1)}
    return {}


@contextlib.contextmanager
def eager_runtimes(workload: Any) -> Iterator[list[str]]:
    """Swap each graphing/compiling ``DecodeRuntime`` on the workload for an eager twin (same
    model, cache, static-shape and pinned settings); yields what was unwrapped."""
    from workloads.layers.runtime import DecodeRuntime

    swapped: list[tuple[str, Any]] = []
    unwrapped: list[str] = []
    for attr, runtime in list(vars(workload).items()):
        if not isinstance(runtime, DecodeRuntime):
            continue
        if not (runtime.graphs or runtime.compile_mode):
            continue
        twin = DecodeRuntime(runtime.model, runtime.device)
        twin.configure_like(runtime)
        twin.graphs, twin.compile_mode = False, None
        twin.weight_bytes_ratio = runtime.weight_bytes_ratio
        twin.invalidate()
        twin._build()  # now, not on the first recorded call: its set-up is not the step's work
        swapped.append((attr, runtime))
        setattr(workload, attr, twin)
        what = [w for w, on in (("CUDA graphs", runtime.graphs),
                                (f"torch.compile ({runtime.compile_mode})",
                                 bool(runtime.compile_mode))) if on]
        unwrapped.append(f"{attr}: {' and '.join(what)}")
    try:
        yield unwrapped
    finally:
        for attr, runtime in swapped:
            setattr(workload, attr, runtime)


def record_step(workload: Any, inputs: Any, device: torch.device | None = None) -> dict[str, Any]:
    """Run one eager step of ``workload`` under the recorder; the encoded inventory."""
    recorder = OpRecorder()
    with eager_runtimes(workload) as unwrapped, torch.inference_mode():
        workload.reset()
        with recorder:
            workload.step(inputs)
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
    notes = []
    if unwrapped:
        notes.append("recorded on the eager step with the same model and shapes ("
                     + "; ".join(unwrapped) + " unwrapped)")
    if recorder.truncated:
        notes.append(f"truncated at {recorder.limit} ops: the step is longer (partial inventory)")
    if recorder.unrecorded:
        notes.append(f"{recorder.unrecorded} ops could not be described and are missing")
    return encode(recorder.calls, notes, truncated=recorder.truncated)


def record_or_reason(workload: Any, inputs: Any, device: torch.device) -> dict[str, Any]:
    """``record_step``, or ``{"error": why}``: a failed inventory never fails the run."""
    try:
        return record_step(workload, inputs, device)
    except Exception as exc:  # noqa: BLE001 - the run's results stand without it
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        return {"version": INVENTORY_VERSION, "error": text[:300]}
