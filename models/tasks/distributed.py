"""Data-parallel training across processes started by torchrun (DistributedDataParallel).

gloo on CPUs, NCCL on GPUs. Every rank reads its own shard of each global batch, gradients are
averaged by DDP, and small collectives keep the ranks agreeing on loss, stop requests and
validation scores. With one process (no torchrun) everything here is a no-op.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from models.errors import TransInrError


@dataclass
class Distributed:
    """Where this process sits in the job: rank `rank` of `world_size`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a small tensor over the ranks (in place; returned for convenience)."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def all_reduce_max(self, values: torch.Tensor) -> torch.Tensor:
        """Maximum of a small tensor over the ranks (in place; returned for convenience)."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shutdown(self, finished: bool = False) -> None:
        """Leave the process group. After a finished run every rank waits for the others first:
        rank 0 hosts the rendezvous store, and a rank still tearing down gloo when rank 0 exits
        aborts ("terminate called without an active exception"). Collecting garbage first frees
        the DDP reducer, whose gloo work must not outlive the interpreter."""
        if self.enabled and dist.is_initialized():
            gc.collect()
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def cuda_backend() -> str:
    """The collective backend for GPU tensors: NCCL, or gloo where $TRANSINR_DDP_BACKEND says so
    (gloo lets several processes share one GPU, which NCCL refuses)."""
    name = os.environ.get("TRANSINR_DDP_BACKEND", "nccl")
    if name not in ("nccl", "gloo"):
        raise TransInrError(f"TRANSINR_DDP_BACKEND={name!r} is not nccl or gloo")
    return name


def gpu_of(local_rank: int, backend: str) -> int:
    """The GPU index of the process of LOCAL_RANK `local_rank`: its own under NCCL, which
    cannot put two processes on one GPU; shared round-robin under gloo."""
    count = torch.cuda.device_count()
    if local_rank < count:
        return local_rank
    if backend == "nccl":
        raise TransInrError(
            f"process LOCAL_RANK {local_rank} has no GPU of its own ({count} visible) and NCCL "
            "cannot share one between processes; start at most one process per GPU "
            "(--nproc_per_node), or set TRANSINR_DDP_BACKEND=gloo to share them"
        )
    return local_rank % max(count, 1)


def from_environment(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...);
    on CUDA each rank takes the GPU of its LOCAL_RANK (shared ones under gloo: `gpu_of`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if device.type == "cuda":
        backend = cuda_backend()
        device = torch.device("cuda", gpu_of(local_rank, backend))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            # The loop's small bookkeeping all-reduces use CPU tensors: gloo carries those,
            # NCCL the gradients on the GPU.
            dist.init_process_group("cpu:gloo,cuda:nccl" if backend == "nccl" else "gloo")
        except (RuntimeError, ValueError) as error:
            raise TransInrError(
                f"cannot join the torchrun process group ({error}); check --rdzv-endpoint"
            ) from None
    return Distributed(rank, world_size, local_rank), device
