"""MoE decode ladder and grouped-GEMM experts vs the loop over experts (H100 targets).

    python benchmarks/moe_ladder.py                      # H100: preset "full", ~1-2 minutes
    python benchmarks/moe_ladder.py --device cpu --preset tiny --repeat 3   # smoke test

Two sub-benchmarks, each in its own try/except (a failure is recorded, the rest still runs):

  experts   the routed-experts half of one MoE layer at 64 experts top-6 (the preset's hidden
            and expert width, bf16), T tokens in {8, 64, 512}: L0 masked loop over experts vs
            sorted dispatch + torch._grouped_mm vs sorted dispatch + padded bmm.
            Target: grouped vs loop >= 3x.
  ladder    one decode step (batch B, after a prefill of prompt_len) of the whole MoE model,
            one build, implementations switched in place, cumulative:
              L0 eager (masked loop)  ->  + L6 grouped experts  ->  + CUDA graph of the step
              ->  + L5 FP8 experts (native FP8 grouped GEMMs where the probe passes).
            Target: all layers on vs L0 eager >= 6x. L1 (TF32) changes nothing in bf16.
            The last-token logits of each rung are compared with L0 (max rel err), routing
            not replayed, so a bf16 expert flip shows up here as a larger error.

Timing: CUDA events around each step (perf_counter on CPU), warm-up first, median of
``--repeat``; min/max reported. Writes benchmarks/results/moe_ladder-<device>.json in the
/work/shared/BENCHMARKS.md format and prints a short table last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from workloads import catalog  # noqa: E402
from workloads.layers import moe_experts as mx  # noqa: E402
from workloads.layers.moe_apply import apply_fp8_experts  # noqa: E402
from workloads.layers.moe_block import moe_blocks  # noqa: E402
from workloads.moe import DTYPES, MoEWorkload  # noqa: E402


def time_ms(fn: Callable[[], Any], device: torch.device, repeat: int, warmup: int
            ) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def stats(samples: list[float], unit: str = "ms") -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples), "unit": unit}


def bench_experts(shape: dict[str, Any], device: torch.device, dtype: torch.dtype,
                  repeat: int, metrics: dict[str, Any], table: list[list[str]]) -> None:
    experts, top_k, hidden, inter = 64, 6, shape["hidden"], shape["moe_inter"]
    g = torch.Generator(device=device).manual_seed(0)
    ew = mx.ExpertWeights(
        torch.randn(experts, 2 * inter, hidden, device=device, generator=g).to(dtype) * hidden ** -0.5,
        torch.randn(experts, hidden, inter, device=device, generator=g).to(dtype) * inter ** -0.5)
    native = mx.probe_grouped_mm(ew.w13) is None  # type: ignore[arg-type]
    for tokens in (8, 64, 512):
        x = torch.randn(tokens, hidden, device=device, generator=g).to(dtype)
        idx = torch.rand(tokens, experts, device=device, generator=g).topk(top_k, -1).indices
        w = torch.rand(tokens, top_k, device=device, generator=g).to(dtype)
        with torch.inference_mode():
            loop = stats(time_ms(lambda x=x, idx=idx, w=w: mx.experts_loop(x, idx, w, ew),
                                 device, repeat, 3))
            rows = {"loop": loop}
            for backend in (["grouped_mm"] if native else []) + ["bmm"]:
                rows[backend] = stats(time_ms(
                    lambda b=backend, x=x, idx=idx, w=w: mx.experts_sorted(x, idx, w, ew, b),
                    device, repeat, 3))
        for name, value in rows.items():
            metrics[f"experts_T{tokens}_{name}_ms"] = value
            speedup = loop["median"] / value["median"]
            if name != "loop":
                metrics[f"experts_T{tokens}_{name}_speedup"] = {"median": speedup, "unit": "x"}
            table.append([f"experts T={tokens} {name}", f"{value['median']:.3f} ms",
                          f"{speedup:.2f}x" + (" (target >= 3x)" if name != "loop" else "")])


def logits_error(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return float((candidate.float() - reference.float()).abs().max()
                 / reference.float().abs().max())


def bench_ladder(preset: str, device: torch.device, repeat: int, metrics: dict[str, Any],
                 table: list[list[str]], notes: list[str]) -> None:
    params = catalog.get_preset("moe", preset)
    workload = MoEWorkload()
    torch.backends.cuda.matmul.allow_tf32 = False
    workload.build(device, DTYPES[params["dtype"]], params, seed=0)
    model, blocks = workload.model, moe_blocks(workload.model)
    assert model is not None
    position = params["prompt_len"]
    with torch.inference_mode():
        prompt = workload.make_inputs(0)
        token = model(prompt, 0).argmax(-1)[:, None]  # fills the KV cache (L0)

        def step() -> torch.Tensor:
            return model(token, position)

        reference = step()
        rungs: list[tuple[str, Callable[[], torch.Tensor]]] = [("L0 eager (masked loop)", step)]

        def grouped() -> Callable[[], torch.Tensor]:
            note = mx.probe_grouped_mm(blocks[0].weights.w13)  # type: ignore[arg-type]
            for block in blocks:
                block.dispatch, block.backend = "sorted", "grouped_mm" if note is None else "bmm"
            if note:
                notes.append(f"grouped experts fell back to bmm: {note}")
            return step

        def graphed() -> Callable[[], torch.Tensor]:
            if device.type != "cuda":
                notes.append("no CUDA graph on CPU: the graph rung is eager")
                return step
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = step()
            return lambda: (graph.replay(), out)[1]

        def fp8() -> Callable[[], torch.Tensor]:
            notes.append(f"L5-moe-fp8: {apply_fp8_experts(workload, device)}")
            return graphed()

        ladder = [("+ L6 grouped experts", grouped), ("+ CUDA graph", graphed),
                  ("+ L5 FP8 experts (all on)", fp8)]
        results: list[tuple[str, dict[str, Any], float]] = []
        for index in range(len(ladder) + 1):
            name, fn = rungs[-1]
            try:
                value = stats(time_ms(fn, device, repeat, 3))
                results.append((name, value, logits_error(reference, fn())))
            except Exception as exc:  # record and stop climbing: later rungs build on this
                notes.append(f"ladder rung {name!r} failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
                break
            if index < len(ladder):
                rungs.append((ladder[index][0], ladder[index][1]()))
    base = results[0][1]["median"] if results else None
    for key_index, (name, value, error) in enumerate(results):
        key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        metrics[f"decode_{key_index}_{key}_ms"] = value
        metrics[f"decode_{key_index}_{key}_rel_err"] = {"median": error, "unit": "max rel err"}
        assert base is not None
        speedup = base / value["median"]
        metrics[f"decode_{key_index}_{key}_speedup"] = {"median": speedup, "unit": "x"}
        table.append([f"decode {name}", f"{value['median']:.3f} ms",
                      f"{speedup:.2f}x vs L0 (rel err {error:.2g})"])
    if results:
        metrics["decode_all_on_speedup"] = {"median": base / results[-1][1]["median"],
                                            "unit": "x", "rung": results[-1][0]}


def nvml_clock() -> tuple[int | None, bool | None]:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        clock = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
        reasons = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
        # idle and application-clock settings are not throttling
        throttled = bool(reasons & ~(pynvml.nvmlClocksThrottleReasonGpuIdle
                                     | pynvml.nvmlClocksThrottleReasonApplicationsClocksSetting))
        return clock, throttled
    except Exception:
        return None, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="full", choices=list(catalog.get_workload("moe").presets))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = catalog.get_preset("moe", args.preset)
    dtype = DTYPES[shape["dtype"]]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    sm_start, _ = nvml_clock() if device.type == "cuda" else (None, None)
    metrics: dict[str, Any] = {}
    table: list[list[str]] = []
    notes = [f"preset moe/{args.preset} ({shape['hidden']} hidden, {shape['layers']} layers, "
             f"batch {shape['batch']}, prompt {shape['prompt_len']}), dtype {shape['dtype']}"]
    started = time.perf_counter()
    for name, run in (("experts", lambda: bench_experts(shape, device, dtype, args.repeat,
                                                        metrics, table)),
                      ("ladder", lambda: bench_ladder(args.preset, device, args.repeat,
                                                      metrics, table, notes))):
        try:
            run()
        except Exception as exc:
            traceback.print_exc()
            notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
            table.append([name, "FAILED", f"{type(exc).__name__}"])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    sm_end, throttled = nvml_clock() if device.type == "cuda" else (None, None)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except Exception:
        commit = None
    all_on = metrics.get("decode_all_on_speedup", {}).get("median")
    grouped = metrics.get("experts_T64_grouped_mm_speedup", {}).get("median")
    record = {
        "benchmark": "moe_ladder",
        "command": "python benchmarks/moe_ladder.py " + " ".join(sys.argv[1:]),
        "device": device_name, "driver": _driver(), "torch": torch.__version__,
        "commit": commit, "date": dt.date.today().isoformat(),
        "clocks": {"sm_mhz_start": sm_start, "sm_mhz_end": sm_end, "throttle_seen": throttled},
        "metrics": metrics,
        "reference": {"what": "L0 eager decode step (masked loop over experts), same run",
                      "median": metrics.get("decode_0_l0_eager_masked_loop_ms", {}).get("median")},
        "targets": {"decode_all_on_vs_l0": ">= 6x", "grouped_vs_loop_64e_top6": ">= 3x"},
        "notes": "; ".join(notes) + f"; wall {time.perf_counter() - started:.0f} s",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    path = args.out / f"moe_ladder-{slug}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {path}")
    width = max(len(row[0]) for row in table) if table else 10
    for row in table:
        print(f"{row[0]:<{width}}  {row[1]:>12}  {row[2]}")
    print(f"targets: all layers on vs L0 {_fmt(all_on)} (>= 6x), "
          f"grouped vs loop at T=64 {_fmt(grouped)} (>= 3x)")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
