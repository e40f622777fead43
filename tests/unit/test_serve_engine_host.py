"""The serving engine's host cost per iteration, by count (not by time): on a GPU the eager
engine is bound by the host, so what an iteration does on the host is what its TPOT is.

- one synchronizing read-back (the sampled tokens) and no blocking host-to-device copy per
  iteration, however many requests run and however many layers the model has;
- a number of kernels (aten ops) per decode iteration that does not grow with the number of
  decoding requests;
- no attention call that cuDNN's SDPA backend may take (it builds a plan per new shape: ~50 ms
  a call on an H200, and a serving engine's shapes change every iteration);
- the arrival loop never sleeps while requests are queued or running.
Plus the CUDA layout of grouped-query attention (query heads as rows of their KV head, for the
memory-efficient kernel) decodes what one-request-at-a-time greedy decoding does.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import workloads.serve_workload as serve_workload
from workloads import catalog
from workloads.dense import DenseDecoder, resolve_shape
from workloads.micro_specdec import greedy_generate
from workloads.serve_engine import ServeEngine, ServeRequest

CPU = torch.device("cpu")
READS = ("tolist", "item", "cpu", "numpy", "__bool__")  # device-to-host: a sync on a GPU


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shape_of(layers: int) -> dict[str, Any]:
    return resolve_shape({"hidden": 64, "layers": layers, "heads": 4, "kv_heads": 2, "mlp": 128,
                          "vocab": 97, "batch": 1, "prompt_len": 12, "new_tokens": 20,
                          "max_seq": 96, "dtype": "float32", "rope_theta": 10000.0,
                          "norm_eps": 1e-5})


def decoding_engine(requests: int, layers: int) -> ServeEngine:
    """An engine whose ``requests`` requests have all finished their prefill."""
    shape = shape_of(layers)
    model = DenseDecoder(shape, CPU, torch.float32, seed=1).eval()
    engine = ServeEngine(model, shape, max_running=8, max_batch_tokens=64, prefill_chunk=16)
    rng = random.Random(requests)
    for index in range(requests):
        engine.add(ServeRequest(index, [rng.randrange(97) for _ in range(rng.randint(3, 20))],
                                40))
    with torch.inference_mode():
        while any(not r.output for r in engine.running) or engine.waiting:
            engine.step()
    return engine


class Transfers:
    """Counts host<->device traffic the engine starts: torch.tensor(..., device=...) and
    .to(device) without non_blocking (blocking copies), and the read-backs in READS."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        real_tensor, real_to = torch.tensor, torch.Tensor.to

        def tensor(*args: Any, **kwargs: Any) -> torch.Tensor:
            self.counts["blocking_copy" if kwargs.get("device") is not None
                        else "host_tensor"] += 1
            return real_tensor(*args, **kwargs)

        def to(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            moves = "device" in kwargs or any(isinstance(a, torch.device | str) for a in args)
            if moves:
                self.counts["async_copy" if kwargs.get("non_blocking") else "blocking_copy"] += 1
            return real_to(tensor, *args, **kwargs)

        monkeypatch.setattr(torch, "tensor", tensor)
        monkeypatch.setattr(torch.Tensor, "to", to)
        for name in READS:
            real = getattr(torch.Tensor, name)

            def read(tensor: torch.Tensor, *args: Any, _real: Any = real, _name: str = name,
                     **kwargs: Any) -> Any:
                self.counts[_name] += 1
                return _real(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, read)

    def reads(self) -> int:
        return sum(self.counts[name] for name in READS)


class OpCount(TorchDispatchMode):
    """aten ops that compute (views excluded: they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops += not func.is_view
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("requests", "layers"), [(1, 2), (6, 2), (6, 4)])
def test_one_read_back_and_no_blocking_copy_per_iteration(monkeypatch: pytest.MonkeyPatch,
                                                          requests: int, layers: int) -> None:
    engine = decoding_engine(requests, layers)
    engine.add(ServeRequest(99, list(range(1, 40)), 3))  # prefill chunks beside the decodes
    transfers = Transfers(monkeypatch)
    with torch.inference_mode():
        for iteration in range(1, 6):
            engine.step()
            counts = transfers.counts
            assert transfers.reads() == iteration, counts  # the sampled tokens, once
            assert counts["blocking_copy"] == 0, counts
            assert counts["host_tensor"] == counts["async_copy"] == iteration, counts


def test_kernels_per_decode_iteration_do_not_grow_with_requests() -> None:
    ops = {}
    for requests in (1, 6):
        engine = decoding_engine(requests, layers=2)
        with torch.inference_mode(), OpCount() as count:
            engine.step()
        ops[requests] = count.ops
    assert ops[1] == ops[6], ops


@pytest.mark.parametrize("grouped_rows", [False, True])
def test_both_grouped_query_layouts_equal_isolated_greedy(grouped_rows: bool) -> None:
    shape = shape_of(2)
    model = DenseDecoder(shape, CPU, torch.float32, seed=2).eval()
    engine = ServeEngine(model, shape, max_running=3, max_batch_tokens=8, prefill_chunk=6)
    engine.grouped_rows = grouped_rows  # True is what CUDA gets
    prompts = [[(7 * i + n) % 97 for i in range(n)] for n in (5, 17, 30, 9)]
    requests = [ServeRequest(i, p, 8) for i, p in enumerate(prompts)]
    for request in requests:
        engine.add(request)
    with torch.inference_mode():
        while not engine.idle():
            engine.step()
        for request, prompt in zip(requests, prompts, strict=True):
            assert request.output == greedy_generate(model, torch.tensor([prompt]), 8)[0]


def test_engine_attention_never_goes_to_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = torch.nn.functional.scaled_dot_product_attention

    def sdpa(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", sdpa)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    engine = decoding_engine(3, layers=2)  # prefill chunks and decodes
    with torch.inference_mode():
        engine.step()
    assert seen and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before  # restored after the forward


def test_arrival_loop_never_sleeps_while_work_is_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    workload = serve_workload.ServeLoadWorkload()
    workload.build(CPU, torch.float32, catalog.get_preset("serve", "tiny"), seed=0)
    sleeps: list[float] = []
    monkeypatch.setattr(serve_workload.time, "sleep", sleeps.append)
    arrivals = [(0.0, [5 + i, 6, 7, 8], 4) for i in range(5)]  # all there at once
    with torch.inference_mode():
        summary = workload.serve_rate(10.0, arrivals)
    assert summary["completed"] == 5 and sleeps == []
