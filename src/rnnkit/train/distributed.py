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


def init() -> tuple[int, int]:
    """(rank, world size); starts the process group when torchrun launched several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
