"""The serving load test as a workload (seed 001): ``aiperf-workbench loadtest`` runs it.

Build: a dense model (``workloads.dense.DenseDecoder``, random weights from the seed) and a
``ServeEngine`` over it. Inputs: for each offered rate in ``rates``, a bounded synthetic
Poisson arrival process (seeded: exponential inter-arrival times, uniform prompt and output
lengths, random prompt tokens), at most ``num_requests`` requests. The measured step runs the
whole sweep: for each rate the engine serves the arrivals in real time (requests are admitted
when the wall clock passes their arrival time) until every request finishes or
``max_duration_s`` passes, when the rest are dropped and count as SLO misses. Per rate:
TTFT, TPOT, ITL and E2E percentiles, output tokens/s, request throughput, goodput under the
SLO (``slo_ttft_ms``, ``slo_tpot_ms``); over the sweep: the knee (``serve_metrics.find_knee``).
Results are in ``extra.loadtest``.

Parity: ``parity_requests`` requests with different prompt lengths are served together by the
engine (chunked prefill and decode interleaved in the same batches) and their logits compared,
token by token, with a plain one-request-at-a-time greedy decode by ``DenseDecoder`` (its own
KV cache and eager attention): batching must not change what a request computes.
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch

from workloads.dense import DenseDecoder, resolve_shape
from workloads.errors import WorkbenchError
from workloads.interface import ParityOutputs, Workload
from workloads.micro_base import check_params, dtype_of, positive_int
from workloads.micro_specdec import greedy_generate
from workloads.serve_engine import ServeEngine, ServeRequest
from workloads.serve_metrics import RequestTiming, find_knee, summarize_load

MODEL_KEYS = ("hidden", "layers", "heads", "kv_heads", "mlp", "vocab", "max_seq", "dtype",
              "rope_theta", "norm_eps")
LOAD_KEYS = ("num_requests", "rates", "max_duration_s", "prompt_min", "prompt_max",
             "output_min", "output_max", "max_batch_tokens", "prefill_chunk", "max_running",
             "slo_ttft_ms", "slo_tpot_ms", "parity_requests", "model")
PRECISION_OF_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def float_list(value: Any, key: str) -> list[float]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        rates = [float(str(item).strip()) for item in items if str(item).strip()]
    except ValueError:
        raise WorkbenchError(f"serve param {key} must be numbers like 2,8,32, "
                             f"got {value!r}") from None
    if not rates or min(rates) <= 0:
        raise WorkbenchError(f"serve param {key} must be positive numbers, got {value!r}")
    return rates


def poisson_arrivals(rate: float, count: int, seed: int, vocab: int, prompt_range: tuple[int, int],
                     output_range: tuple[int, int]) -> list[tuple[float, list[int], int]]:
    """(arrival_s, prompt tokens, output length) for ``count`` requests at ``rate`` per s."""
    rng = random.Random(seed)
    clock, requests = 0.0, []
    for _ in range(count):
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(*prompt_range))]
        requests.append((clock, prompt, rng.randint(*output_range)))
        clock += rng.expovariate(rate)
    return requests


class ServeLoadWorkload(Workload):
    name = "serve"
    step_name = "load sweep"
    model: DenseDecoder | None

    def build(self, device: torch.device, dtype: torch.dtype, params: dict[str, Any],
              seed: int = 0) -> None:
        check_params(self.name, params, MODEL_KEYS + LOAD_KEYS)
        if params.get("model", "dense") != "dense":
            raise WorkbenchError(f"serve model {params['model']!r} is not supported yet",
                                 "use model=dense")
        load: dict[str, Any]
        load = {key: positive_int(self.name, params, key)
                for key in ("num_requests", "prompt_min", "prompt_max", "output_min",
                            "output_max", "max_batch_tokens", "prefill_chunk", "max_running",
                            "parity_requests")}
        load["rates"] = float_list(params.get("rates"), "rates")
        for key in ("max_duration_s", "slo_ttft_ms", "slo_tpot_ms"):
            value = params.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise WorkbenchError(f"serve param {key} must be a positive number, "
                                     f"got {value!r}")
            load[key] = float(value)
        if load["prompt_min"] > load["prompt_max"] or load["output_min"] > load["output_max"]:
            raise WorkbenchError("serve: prompt_min/output_min must not exceed "
                                 "prompt_max/output_max")
        shape = resolve_shape({**{k: params[k] for k in MODEL_KEYS if k in params}, "batch": 1,
                               "prompt_len": load["prompt_max"],
                               "new_tokens": load["output_max"]})
        self.device, self.dtype = device, dtype_of(self.name, shape["dtype"])
        self.compute_precision = PRECISION_OF_DTYPE[self.dtype]
        self.shape, self.load, self.seed = shape, load, seed
        self.model = DenseDecoder(shape, device, self.dtype, seed).eval()
        self.facts: dict[str, Any] = {"shape": dict(shape), "load": dict(load)}

    def _engine(self, record_logits: bool = False) -> ServeEngine:
        return ServeEngine(self.model, self.shape, self.load["max_running"],
                           self.load["max_batch_tokens"], self.load["prefill_chunk"],
                           record_logits=record_logits)

    def make_inputs(self, seed: int) -> dict[str, Any]:
        load = self.load
        lengths = ((load["prompt_min"], load["prompt_max"]),
                   (load["output_min"], load["output_max"]))
        sweeps = {rate: poisson_arrivals(rate, load["num_requests"], seed * 1000 + index,
                                         self.shape["vocab"], *lengths)
                  for index, rate in enumerate(load["rates"])}
        parity = poisson_arrivals(1.0, load["parity_requests"], seed + 7, self.shape["vocab"],
                                  *lengths)
        return {"sweeps": sweeps, "parity": [(prompt, out) for _, prompt, out in parity]}

    def parity_outputs(self, inputs: Any, forced_tokens: torch.Tensor | None = None
                       ) -> ParityOutputs:
        rows, tokens = [], []
        if forced_tokens is None:  # reference: each request alone through DenseDecoder
            assert self.model is not None  # set by build()
            for prompt, max_new in inputs["parity"]:
                prompt_tensor = torch.tensor([prompt], device=self.device)
                out, logits = greedy_generate(self.model, prompt_tensor, max_new)
                rows.append(logits)
                tokens += out
        else:  # candidate: all of them at once through the engine
            engine = self._engine(record_logits=True)
            forced = [int(t) for t in forced_tokens.reshape(-1).tolist()]
            requests = []
            for i, (prompt, max_new) in enumerate(inputs["parity"]):
                requests.append(ServeRequest(i, prompt, max_new, forced=forced[:max_new]))
                forced = forced[max_new:]
            for request in requests:
                engine.add(request)
            while not engine.idle():
                engine.step()
            for request in requests:
                rows.append(torch.stack(request.logits))
                tokens += request.output
            self.facts["parity_engine_iterations"] = engine.iterations
        logits = torch.cat(rows)[:, None, :]
        return ParityOutputs(logits, torch.tensor(tokens)[:, None])

    def prepare(self, inputs: Any) -> None:
        engine = self._engine()  # warm-up: allocator, kernels, first-call overheads
        for index, (prompt, max_new) in enumerate(inputs["parity"][:2]):
            engine.add(ServeRequest(index, prompt, min(max_new, 2)))
        while not engine.idle():
            engine.step()

    def serve_rate(self, rate: float, arrivals: list[tuple[float, list[int], int]]
                   ) -> dict[str, Any]:
        engine = self._engine()
        requests = [ServeRequest(i, prompt, max_new, arrival)
                    for i, (arrival, prompt, max_new) in enumerate(arrivals)]
        pending = list(requests)
        start = time.perf_counter()
        while pending or not engine.idle():
            now = time.perf_counter() - start
            if now > self.load["max_duration_s"]:
                engine.abort_all()
                break
            while pending and pending[0].arrival_s <= now:
                engine.add(pending.pop(0))
            if engine.idle():
                time.sleep(max(0.0, min(pending[0].arrival_s - now, 0.05)))
                continue
            engine.step()
        timings = [RequestTiming(start + r.arrival_s, len(r.prompt), r.max_new,
                                 list(r.token_times_s)) for r in requests]
        summary = summarize_load(timings, rate, self.load["slo_ttft_ms"],
                                 self.load["slo_tpot_ms"])
        summary["engine_iterations"] = engine.iterations
        summary["dropped"] = sum(1 for r in requests if not r.done)
        return summary

    def step(self, inputs: Any) -> None:
        points = [self.serve_rate(rate, arrivals) for rate, arrivals in inputs["sweeps"].items()]
        self.facts["loadtest"] = {"rates": points, "knee": find_knee(points)}

    def tokens_per_step(self) -> int:
        """Output tokens the sweep asks for (dropped requests make the real count lower)."""
        return sum(max_new for arrivals in self._planned() for _, _, max_new in arrivals)

    def _planned(self) -> list[list[tuple[float, list[int], int]]]:
        if not hasattr(self, "_planned_cache"):
            self._planned_cache = list(self.make_inputs(self.seed)["sweeps"].values())
        return self._planned_cache

    def extra(self) -> dict[str, Any]:
        return self.facts


def create_workload() -> ServeLoadWorkload:
    return ServeLoadWorkload()
