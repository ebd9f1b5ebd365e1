"""Data parallelism under torchrun: the same command runs on 1 or N processes.

Each of the N processes takes an equal slice of every batch (rows r*B/N .. (r+1)*B/N),
computes its gradients, and the gradients are averaged across processes before each
optimizer step, so N processes take the same steps as one process on the whole batch.
(rnnkit averages one flat gradient buffer itself instead of wrapping the model in
DistributedDataParallel, whose hooks follow ``forward``; models train through ``loss``.)
Only rank 0 writes checkpoints, metrics and progress.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def init(device: torch.device | str = "cpu") -> tuple[int, int]:
    """(rank, world size); starts the process group when torchrun launched several processes:
    NCCL when this process trains on a CUDA device, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        device = torch.device(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def finish() -> None:
    """End the process group once training is over (every process, after its last collective).
    Left to the interpreter's exit, gloo's worker threads can abort a process that finished
    its work (SIGABRT, "terminate called without an active exception"; torch issue 190489),
    and torchrun then reports the run as failed."""
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(name: str) -> torch.device:
    """The device of this process for a --device value: under torchrun, "auto" and "cuda" mean
    this process's own GPU (cuda:LOCAL_RANK), and "auto" means the CPU when the node has fewer
    GPUs than processes (processes sharing a GPU cannot use NCCL)."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if processes == 1 or name not in ("auto", "cuda"):
        return torch.device(name if name != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if gpus >= processes:
        return torch.device("cuda", rank)
    if name == "cuda":
        raise ValueError(f"--device cuda: torchrun started {processes} processes on this node and there are "
                         f"{gpus} CUDA devices; start at most {gpus} (--nproc_per_node) or use --device cpu")
    return torch.device("cpu")


def is_main_process() -> bool:
    """True on rank 0 (and when not launched by torchrun): the process that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every process starts from rank 0's weights."""
    if dist.is_initialized():
        for p in model.parameters():
            dist.broadcast(p.data, 0)


def average_gradients(params: list[Tensor], world: int) -> None:
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_sum(values: list[float], device: torch.device | str) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def shard(batch: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """This process's rows of every batch-first tensor in ``batch``."""
    if world == 1:
        return batch
    B = next(v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0)
    if B % world:
        raise ValueError(f"the batch size ({B}) must be divisible by the number of processes ({world})")
    n = B // world
    return {k: v[rank * n : (rank + 1) * n] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == B else v
            for k, v in batch.items()}
