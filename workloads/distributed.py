"""Process-group setup for runs under torchrun, and the collectives the parallel layers use.

torchrun (``python -m torch.distributed.run``) starts one ``workloads.run`` per rank and sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. ``init_from_env`` reads them and
joins the group: NCCL when the run is on CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on CPU.
Without those variables (a plain run) it returns the single-rank context and touches nothing.

NVLink multicast (NVLS) stays off: NCCL_NVLS_ENABLE=0 and TORCH_SYMM_MEM_DISABLE_MULTICAST=1
are set by the launcher (``profilers.torchrun``) and again here, before the group is made, so a
rank started by hand gets them too.

Parallelism per workload (``shard_workload``):
  dense          tensor parallel (``workloads.layers.tensor_parallel``): column-parallel QKV and
                 gate/up, row-parallel o_proj and down_proj with an all-reduce.
  moe, gptoss    expert parallel (``workloads.layers.expert_parallel``): experts split across
                 ranks, tokens dispatched to their experts' ranks with all-to-all.
Every rank builds the full model from the same seed and keeps its shard, so a 2-rank run
computes the same function as a 1-rank run with the same weights.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import torch
import torch.distributed as dist

from workloads.errors import WorkbenchError

NO_MULTICAST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
INIT_TIMEOUT_S = 600


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # nccl | gloo; None when not distributed

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 and self.backend is not None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "world_size": self.world_size,
                "local_rank": self.local_rank, "backend": self.backend}


def env_rank() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's variables; (0, 1, 0) without them."""
    def read(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name, default))
        except ValueError:
            return default

    return read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0)


def init_from_env(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun set up; returns the context and this rank's device."""
    rank, world, local = env_rank()
    if world <= 1 or "MASTER_ADDR" not in os.environ:
        return DistContext(rank=0, world_size=1, local_rank=0), device
    for key, value in NO_MULTICAST_ENV.items():
        os.environ.setdefault(key, value)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise WorkbenchError(f"local rank {local} has no GPU: only {count} visible",
                                 "lower --nproc-per-node to the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend,
                                  "timeout": timedelta(seconds=INIT_TIMEOUT_S)}
        if backend == "nccl":
            kwargs["device_id"] = device  # eager NCCL init: communicator errors surface here
        dist.init_process_group(**kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend), device


def barrier() -> None:
    """Every rank waits for the others (and, on CUDA, for its own queued work)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
        torch.cuda.synchronize()
    else:
        dist.barrier()


SHUTDOWN_TIMEOUT_S = 60.0


def shutdown(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
    """Leave the process group. Captured CUDA graphs holding NCCL kernels are reset first:
    alive, they make destroy_process_group() hang in ncclCommDestroy (pytorch/pytorch#115388).
    The destroy runs in a daemon thread; False when it did not return within ``timeout_s`` —
    the caller then leaves with ``os._exit`` (the results are already written) instead of
    hanging until the run's timeout."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    if dist.get_backend() != "nccl":  # gloo: no graphs, no known hang; stay on this thread
        dist.destroy_process_group()
        return True
    from workloads.layers.runtime import release_cuda_graphs

    torch.cuda.synchronize()
    release_cuda_graphs()
    thread = threading.Thread(target=dist.destroy_process_group, name="destroy_process_group",
                              daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks. Traceable under torch.compile (functional collective) and capturable in
    a CUDA graph (in-place NCCL all-reduce on the capture stream)."""
    if torch.compiler.is_compiling():
        from torch.distributed import _functional_collectives as funcol

        # WORLD is set: init_process_group ran before any collective
        return funcol.all_reduce(tensor, "sum", cast(dist.ProcessGroup, dist.group.WORLD))
    dist.all_reduce(tensor)
    return tensor


def all_gather_rows(tensor: torch.Tensor, world: int) -> torch.Tensor:
    """Concatenate each rank's equally-sized [n, ...] tensor along dim 0, in rank order."""
    out = tensor.new_empty((world * tensor.shape[0], *tensor.shape[1:]))
    dist.all_gather_into_tensor(out, tensor.contiguous())
    return out


def all_to_all_rows(rows: torch.Tensor, send_counts: list[int], recv_counts: list[int]
                    ) -> torch.Tensor:
    """Send ``send_counts[r]`` consecutive rows to rank r; receive ``recv_counts[r]`` from it."""
    out = rows.new_empty((sum(recv_counts), *rows.shape[1:]))
    dist.all_to_all_single(out, rows.contiguous(), recv_counts, send_counts)
    return out


def exchange_counts(send_counts: torch.Tensor) -> torch.Tensor:
    """How many rows each rank will send us, given how many we send each (int64 [world])."""
    recv = torch.empty_like(send_counts)
    dist.all_to_all_single(recv, send_counts.contiguous())
    return recv


def shard_workload(workload: Any, ctx: DistContext) -> str:
    """Split the built workload's model over the ranks; returns a one-line description."""
    if not ctx.enabled:
        return "single rank"
    if workload.name == "dense":
        from workloads.layers.tensor_parallel import shard_dense

        return shard_dense(workload, ctx)
    if workload.name in ("moe", "gptoss"):
        from workloads.layers.expert_parallel import shard_moe

        return shard_moe(workload, ctx)
    raise WorkbenchError(f"workload {workload.name!r} has no multi-GPU implementation",
                         "torchrun runs support dense (tensor parallel) and moe/gptoss "
                         "(expert parallel)")


def gather_objects(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (None elsewhere); a single rank gets [obj]."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


FINGERPRINT_STEPS, FINGERPRINT_VOCAB = 16, 32


def outputs_fingerprint(outputs: Any) -> dict[str, Any]:
    """A small, comparable summary of a reference decode (ParityOutputs): the greedy tokens,
    each step's logits norm and the first logits of batch row 0. A multi-rank run and a
    1-rank run of the same spec should agree on all of it (tokens exactly, logits within the
    precision's tolerance)."""
    logits = outputs.logits[:FINGERPRINT_STEPS].float()
    return {"tokens": outputs.tokens[:FINGERPRINT_STEPS].cpu().tolist(),
            "logits_norm": logits.flatten(1).norm(dim=1).cpu().tolist(),
            "logits_head": logits[:, 0, :FINGERPRINT_VOCAB].cpu().tolist()}
