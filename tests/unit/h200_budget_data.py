"""The real H200 trace of dense llama-3.1-8b on the best bf16 stack (L0-L4,L5,L5-gemv), read
the way the tests need it, independently of the code under test:

- step ranges and profiler overhead from the raw JSON with the stdlib (the Kineto parser keeps
  no annotation frame yet: this is what that frame will hold);
- per-launch FLOPs and DRAM bytes from the model's known shapes (what the workload's operation
  inventory will give), for the two kernels whose work is fixed by the shapes: the 129 GEMVs of
  a decode step (weights read once) and the 32 decode attentions (the valid KV read once).
  Everything else stays unknown, as it is in the trace.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data" / "h200"
TRACE = DATA / "dense_best_trace.json.gz"
CEILINGS = DATA / "ceilings.json"  # `calibrate` on the same H200, as cached in its home
LAYERS = ("L0", "L1", "L2", "L3", "L4", "L5", "L5-gemv")

# llama-3.1-8b as the run's result.json records it (extra.shape)
HIDDEN, N_LAYERS, HEADS, KV_HEADS, MLP, VOCAB = 4096, 32, 32, 8, 14336, 128256
HEAD_DIM, PROMPT_LEN, BF16 = HIDDEN // HEADS, 128, 2
# Per decoder layer, in launch order: fused QKV, O, fused gate-up, down; then the LM head.
GEMV_NK = [(HIDDEN + 2 * KV_HEADS * HEAD_DIM, HIDDEN), (HIDDEN, HIDDEN), (2 * MLP, HIDDEN),
           (HIDDEN, MLP)] * N_LAYERS + [(VOCAB, HIDDEN)]
ATTENTION = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop"
GEMV = "gemv_m1_kernel"


def raw_events() -> list[dict]:
    return json.loads(gzip.open(TRACE).read())["traceEvents"]


def annotations() -> pd.DataFrame:
    """user_annotation / gpu_user_annotation / overhead ranges, in integer ns."""
    rows = [(e["name"], e["cat"], e["ts"], e["dur"]) for e in raw_events()
            if e.get("ph") == "X" and e.get("cat") in ("user_annotation", "gpu_user_annotation",
                                                       "overhead")]
    frame = pd.DataFrame(rows, columns=["name", "kind", "ts", "dur"])
    frame["start_ns"] = (frame["ts"] * 1000).round().astype("int64")
    frame["dur_ns"] = (frame["dur"] * 1000).round().astype("int64")
    return frame[["name", "kind", "start_ns", "dur_ns"]]


def gemv_cost(n: int, k: int) -> tuple[float, float]:
    """(FLOPs, bytes) of y = W x with M = 1: the weights dominate, read once."""
    return 2.0 * n * k, float((n * k + n + k) * BF16)


def attention_cost(kv_len: int = PROMPT_LEN) -> tuple[float, float]:
    """(FLOPs, bytes) of one layer's decode attention: one query token over kv_len positions;
    the compulsory traffic is the valid K and V once, plus q and the output."""
    flops = 2.0 * HEADS * kv_len * (HEAD_DIM + HEAD_DIM)
    kv = 2 * KV_HEADS * kv_len * HEAD_DIM * BF16
    return flops, float(kv + 2 * HEADS * HEAD_DIM * BF16)


def fill_costs(kernels: pd.DataFrame) -> pd.DataFrame:
    """A copy of the trace's KernelTable with flops / dram_bytes / cost_source filled from the
    shapes for the GEMVs (by launch order within each graph replay) and the attentions."""
    kt = kernels.copy()
    names = kt["name"].astype(str).to_numpy()
    corr = kt["correlation"].to_numpy(dtype="float64", na_value=np.nan)
    flops = np.full(len(kt), np.nan)
    nbytes = np.full(len(kt), np.nan)
    for replay in np.unique(corr[names == GEMV]):
        rows = np.flatnonzero((names == GEMV) & (corr == replay))
        rows = rows[np.argsort(kt["start_ns"].to_numpy()[rows], kind="stable")]
        assert len(rows) == len(GEMV_NK), len(rows)
        for row, (n, k) in zip(rows, GEMV_NK, strict=True):
            flops[row], nbytes[row] = gemv_cost(n, k)
    attention = np.char.startswith(names.astype(str), ATTENTION)
    flops[attention], nbytes[attention] = attention_cost()
    kt["flops"] = pd.array(flops, dtype="Float64")
    kt["dram_bytes"] = pd.array(nbytes, dtype="Float64")
    kt["cost_source"] = pd.Categorical(np.where(np.isnan(flops), None, "inventory"),
                                       categories=["inventory", "op_shapes", "with_flops", "ncu"])
    return kt


def truth_steps() -> dict[str, float]:
    """Per-step figures straight from the JSON: each aiperf:step host range runs to the end of
    the last GPU activity that started inside it (before the next step), less the profiler's
    overhead ranges that fall where the GPU is idle before its first activity."""
    events = raw_events()
    steps = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "user_annotation" and e["name"] == "aiperf:step")
    acts = sorted((e["ts"], e["ts"] + e["dur"], e["name"]) for e in events
                  if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))
    overhead = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "overhead"]
    windows, attention_us, gemv_us = [], 0.0, 0.0
    for i, (s, cpu_end) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else float("inf")
        mine = [a for a in acts if s <= a[0] < nxt]
        end = min(nxt, max(cpu_end, max(a[1] for a in mine)))
        first = min(a[0] for a in mine)
        lost_to_profiler = sum(max(0.0, min(o1, first) - max(o0, s)) for o0, o1 in overhead)
        windows.append(end - s - lost_to_profiler)
        attention_us += sum(a[1] - a[0] for a in mine if a[2].startswith(ATTENTION))
        gemv_us += sum(a[1] - a[0] for a in mine if a[2] == GEMV)
    n = len(steps)
    return {"steps": n, "step_us": sum(windows) / n, "attention_us": attention_us / n,
            "gemv_us": gemv_us / n}
