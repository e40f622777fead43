"""Catalog entries of the micro-workloads, the serving load test and the GPT-4-scale estimator.

Torch-free, like ``workloads.catalog``, which merges these into ``WORKLOADS``. Presets named
``tiny`` run on a CPU in seconds (CI); the others are sized for an 80 GB GPU. Each
micro-workload picks its variant with ``params["variant"]``; the parity reference is always the
baseline variant (see ``workloads.micro_base``).
"""

from __future__ import annotations

from typing import Any

from workloads.catalog import WorkloadInfo

_SPECDEC_TINY: dict[str, Any] = {
    "hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "mlp": 384, "vocab": 512,
    "prompt_len": 16, "new_tokens": 16, "max_seq": 64, "dtype": "float32",
    "rope_theta": 500000.0, "norm_eps": 1e-5, "draft_layers": 1, "k": 4, "k_sweep": "1,2,4",
    "sweep_repeats": 2, "variant": "speculative",
}
_SERVE_TINY: dict[str, Any] = {
    "hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "mlp": 384, "vocab": 512,
    "max_seq": 96, "dtype": "float32", "rope_theta": 500000.0, "norm_eps": 1e-5,
    "num_requests": 12, "rates": "20,80,320", "max_duration_s": 5.0, "prompt_min": 8,
    "prompt_max": 40, "output_min": 4, "output_max": 16, "max_batch_tokens": 64,
    "prefill_chunk": 16, "max_running": 8, "slo_ttft_ms": 200.0, "slo_tpot_ms": 50.0,
    "parity_requests": 3,
}


def micro_workloads() -> dict[str, WorkloadInfo]:
    attention_gpu = {"batch": 1, "heads": 32, "kv_heads": 8, "head_dim": 128,
                     "dtype": "bfloat16", "mask": "causal", "window": 1024, "block": 128,
                     "stride": 8, "variant": "sdpa"}
    return {
        "attention": WorkloadInfo(
            name="attention", title="Attention micro: naive vs SDPA vs FlexAttention",
            description="softmax(QK^T)V materialized (baseline) vs SDPA (flash on CUDA) vs "
            "FlexAttention; masks causal | sliding | block_sparse; param variant=naive|sdpa|flex.",
            module="workloads.micro_attention", kind="micro",
            presets={
                "tiny": {"batch": 1, "heads": 4, "kv_heads": 2, "seq": 256, "head_dim": 32,
                         "dtype": "float32", "mask": "causal", "window": 64, "block": 32,
                         "stride": 4, "ref_chunk": 128, "variant": "sdpa"},
                "8k": {**attention_gpu, "seq": 8192, "ref_chunk": 1024},
                "32k": {**attention_gpu, "seq": 32768, "ref_chunk": 512},
            }),
        "paged": WorkloadInfo(
            name="paged", title="Paged-attention decode vs contiguous KV",
            description="One decode step over ragged contexts: a padded contiguous KV cache "
            "(baseline) vs a shuffled block pool read through a block table; variant="
            "contiguous|paged.",
            module="workloads.micro_paged", kind="micro",
            presets={
                "tiny": {"batch": 4, "heads": 4, "kv_heads": 2, "head_dim": 32, "context": 128,
                         "block_size": 16, "spare_blocks": 4, "dtype": "float32",
                         "variant": "paged"},
                "h100": {"batch": 32, "heads": 32, "kv_heads": 8, "head_dim": 128,
                         "context": 4096, "block_size": 16, "spare_blocks": 64,
                         "dtype": "bfloat16", "variant": "paged"},
            }),
        "gemm": WorkloadInfo(
            name="gemm", title="GEMM precisions: fp32, tf32, bf16, fp8, int8 weight-only, 2:4",
            description="x @ w^T in one number format per run (variant=fp32|tf32|bf16|"
            "fp8_tensor|fp8_row|int8_wo|sparse24) against fp32; TFLOP/s and error vs fp64.",
            module="workloads.micro_gemm", kind="micro",
            presets={
                "tiny": {"m": 128, "n": 256, "k": 256, "variant": "bf16"},
                "8192": {"m": 8192, "n": 8192, "k": 8192, "variant": "bf16"},
                "decode": {"m": 16, "n": 14336, "k": 4096, "variant": "bf16"},
            }),
        "specdec": WorkloadInfo(
            name="specdec", title="Speculative decoding: truncated-layer draft + dense target",
            description="Greedy target decoding (baseline) vs draft-k-then-verify; output equals "
            "greedy exactly; acceptance rate and speedup for each k in k_sweep.",
            module="workloads.micro_specdec", kind="micro",
            presets={
                "tiny": _SPECDEC_TINY,
                "small": {**_SPECDEC_TINY, "hidden": 1024, "layers": 8, "heads": 16,
                          "kv_heads": 4, "mlp": 2816, "vocab": 32000, "prompt_len": 128,
                          "new_tokens": 64, "max_seq": 256, "dtype": "bfloat16",
                          "draft_layers": 2, "k_sweep": "1,2,4,8", "sweep_repeats": 3},
            }),
        "serve": WorkloadInfo(
            name="serve", title="Serving load test: continuous batching + chunked prefill",
            description="In-process engine over the dense model driven by seeded Poisson "
            "arrivals at each rate in `rates`; TTFT, TPOT/ITL, E2E percentiles, tokens/s, "
            "goodput under an SLO, the knee. CLI: `aiperf-workbench loadtest`.",
            module="workloads.serve_workload", kind="micro",
            presets={
                "tiny": _SERVE_TINY,
                "small": {**_SERVE_TINY, "hidden": 1024, "layers": 8, "heads": 16,
                          "kv_heads": 4, "mlp": 2816, "vocab": 32000, "max_seq": 1024,
                          "dtype": "bfloat16", "num_requests": 200, "rates": "4,16,64",
                          "max_duration_s": 60.0, "prompt_min": 64, "prompt_max": 512,
                          "output_min": 32, "output_max": 256, "max_batch_tokens": 2048,
                          "prefill_chunk": 512, "max_running": 64, "slo_ttft_ms": 500.0,
                          "slo_tpot_ms": 50.0},
            }),
        "gpt4-arch": WorkloadInfo(
            name="gpt4-arch", title="GPT-4-scale MoE memory/GPU-count estimate (analytic)",
            description="An ESTIMATE, not a run: parameters, KV cache, activations and the "
            "minimum GPU count for TP/PP/EP/CP, precision and context. CLI: "
            "`aiperf-workbench gpt4-arch`.",
            module="workloads.gpt4_arch", kind="analytic",
            presets={"gpt4-rumored": {}}, default_preset="gpt4-rumored"),
    }
