"""Gradient averaging across data-parallel workers.

We all-reduce gradients explicitly instead of wrapping G and D in DistributedDataParallel: a GAN
step runs D several times (real, fake, then again inside G's loss) and steps G and D separately,
which DDP's one-forward-one-backward bucketing does not model. One flat all-reduce per optimiser
step is exactly what DDP would compute. The process group (gloo on CPU, nccl on GPU) is set up by
Ray Train's TorchTrainer before the loop starts.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn


def make_grad_sync(world_size: int) -> Callable[[Iterable[nn.Parameter]], None]:
    """A function averaging gradients over ``world_size`` workers (a no-op for one worker)."""
    if world_size == 1:
        return lambda params: None

    def sync(params: Iterable[nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    return sync
