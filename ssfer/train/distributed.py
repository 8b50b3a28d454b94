"""PyTorch DDP under ``torchrun``; a no-op in a single process.

Every rank draws the same global batch (the same seeded generator) and trains
on its own contiguous shard of it, so a multi-process run follows the
single-process one: gradients are averaged by DDP, and the teacher's
predictions are gathered so threshold state is identical on every rank.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def rank_and_world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("SSFER_DDP_BACKEND") != "gloo" else "gloo"
        tdist.init_process_group(backend)
    if world > 1:
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def device_for_rank(device: torch.device, rank: int) -> torch.device:
    if device.type == "cuda" and device.index is None and tdist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shard(n: int, rank: int, world: int) -> slice:
    if n % world:
        raise ValueError(f"batch of {n} does not split evenly over {world} processes")
    per = n // world
    return slice(rank * per, (rank + 1) * per)


def all_gather_cat(x: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return x
    out = torch.empty((world * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    tdist.all_gather_into_tensor(out, x.contiguous())
    return out


def all_reduce_mean(x: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return x
    y = x.clone()
    tdist.all_reduce(y)
    return y / world


def is_main() -> bool:
    return not tdist.is_initialized() or tdist.get_rank() == 0
