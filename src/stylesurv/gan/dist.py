"""torch.distributed helpers for data-parallel training under ``torchrun`` (nccl on GPU, gloo on CPU).

Gradients are averaged by one all-reduce of a flat buffer per optimiser step (the same arithmetic as DDP,
but it also covers the lazy-regularisation steps, which touch only part of each network).  Without
torchrun every helper is a no-op on a world of one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, grids and snapshots."""
        return self.rank == 0


def init_world(device: str | None = None) -> World:
    """Join the process group that torchrun describes in the environment (or return a world of one).

    ``device`` "cuda" gives each process the GPU of its LOCAL_RANK and the nccl backend; otherwise gloo.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    if size <= 1:
        return World(device=torch.device("cuda" if want_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        the_device = torch.device("cuda", local_rank)
    else:
        the_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), device=the_device)


def close_world() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if not _active():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` over all processes (missing gradients count as zero).

    Non-finite values are replaced first (NaN -> 0, +-inf -> +-1e5) so that one bad process cannot poison
    the others, as StyleGAN2-ADA does.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if _active():
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    for p in params:
        torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (a copy on the input's device; the input is unchanged).

    nccl reduces only GPU tensors, so a CPU tensor makes a round trip through this process's GPU.
    """
    if not _active():
        return tensor.clone()
    out = (
        tensor.to(torch.device("cuda", torch.cuda.current_device()))
        if dist.get_backend() == "nccl"
        else tensor
    )
    out = out.clone()
    dist.all_reduce(out)
    return out.to(tensor.device)


def barrier() -> None:
    """Wait for every process."""
    if _active():
        dist.barrier()
