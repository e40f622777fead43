"""Multi-GPU runs: launch the child under torchrun (PyTorch's own launcher) in the supervisor.

``run --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]`` turns the child command into

    python -m torch.distributed.run --nproc-per-node N --standalone --local-ranks-filter 0
        -m workloads.run --spec spec.json --out RUN_DIR

(``--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT`` instead of ``--standalone`` for
several nodes: the same command runs on every node). The supervisor treats torchrun as any
child: its own process group, SIGINT then SIGKILL of the group on cancel or timeout. Rank 0's
progress events reach the parent (``--local-ranks-filter 0``); the other ranks log to
``rank<k>.log``. Every rank writes ``result-rank<k>.json`` (and ``traces/trace-rank<k>.json.gz``
under the torch profiler); rank 0 gathers the results and writes the merged ``result.json``.
If rank 0 could not (a rank died), ``ensure_merged_result`` merges the per-rank files here.

NVLink multicast stays off (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1).
"""

from __future__ import annotations

import sys
from pathlib import Path

from profilers.base import Wrapped
from workloads.errors import WorkbenchError
from workloads.rank_results import RANK_RESULT, TRACES_DIR, merge_rank_files
from workloads.spec import RunSpec

LAUNCHER_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
PROFILERS = ("timer", "torch", "memory")
PARALLEL_WORKLOADS = ("dense", "moe", "gptoss")


def is_distributed(spec: RunSpec) -> bool:
    return spec.world_size > 1


def check_spec(spec: RunSpec) -> None:
    """WorkbenchError when the spec cannot run under torchrun."""
    if not is_distributed(spec):
        return
    if spec.profiler not in PROFILERS:
        raise WorkbenchError(f"--profiler {spec.profiler} is not supported under torchrun",
                             f"use one of: {', '.join(PROFILERS)} with --nproc-per-node")
    if spec.target or spec.checkpoint:
        raise WorkbenchError("--target / --checkpoint runs are single-process",
                             "drop --nproc-per-node")
    if spec.workload not in PARALLEL_WORKLOADS:
        raise WorkbenchError(f"workload {spec.workload!r} has no multi-GPU implementation",
                             f"use one of: {', '.join(PARALLEL_WORKLOADS)}")


def torchrun_command(spec: RunSpec, spec_path: Path, out_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run",
           "--nproc-per-node", str(spec.nproc_per_node)]
    if spec.nnodes > 1:
        cmd += ["--nnodes", str(spec.nnodes), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", spec.rdzv_endpoint]
    else:
        cmd += ["--standalone"]
    cmd += ["--local-ranks-filter", "0", "-m", "workloads.run", "--spec", str(spec_path),
            "--out", str(out_dir)]
    return cmd


def wrap(spec: RunSpec, spec_path: Path, run_dir: Path, wrapped: Wrapped) -> Wrapped:
    """The torchrun launch of the child, keeping the profiler wrapper's environment."""
    return Wrapped(torchrun_command(spec, spec_path, run_dir), {**wrapped.env, **LAUNCHER_ENV})


def ensure_merged_result(run_dir: Path, spec: RunSpec) -> None:
    """Write result.json from the per-rank files when rank 0 did not (it died or hung)."""
    target = run_dir / "result.json"
    if target.is_file():
        return
    merged = merge_rank_files(run_dir, spec.world_size)
    if merged is None:
        return
    from workloads.atomic import write_json_atomic

    write_json_atomic(target, merged)


def collect(run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
    """Artifacts of a torchrun run: per-rank results, rank logs and the per-rank traces."""
    artifacts: dict[str, str] = {}
    for rank in range(spec.world_size):
        name = RANK_RESULT.format(rank=rank)
        if (run_dir / name).is_file():
            artifacts[f"result_rank{rank}"] = name
        if (run_dir / f"rank{rank}.log").is_file():
            artifacts[f"log_rank{rank}"] = f"rank{rank}.log"
    if spec.profiler == "torch":
        traces = run_dir / TRACES_DIR
        if not traces.is_dir() or not any(traces.iterdir()):
            raise WorkbenchError("torch profiler wrote no per-rank traces", "see the run's log")
        artifacts["trace"] = TRACES_DIR
    return artifacts
