"""Sharded in-memory batches: the DistributedSampler contract for data that fits in memory.

Each epoch draws one permutation from (seed, epoch), identical on every rank; global batch i is
``perm[i*B:(i+1)*B]`` and rank r takes its slice ``[r*b:(r+1)*b]`` (b = B / world_size). The last
incomplete global batch is dropped, so every rank takes the same number of steps (the all-reduce
and ``report`` barriers need that), and 1 worker with batch B sees exactly the batches that 2
workers with batch B see together.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


class ShardedBatches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, global_batch: int, rank: int, world_size: int,
                 seed: int):
        assert global_batch % world_size == 0, (
            f"global batch {global_batch} must be a multiple of world_size {world_size}")
        assert len(x) >= global_batch, f"dataset of {len(x)} images is smaller than one batch ({global_batch})"
        self.x, self.y = x, y
        self.global_batch, self.rank, self.world_size, self.seed = global_batch, rank, world_size, seed
        self.local_batch = global_batch // world_size

    def steps_per_epoch(self) -> int:
        return len(self.x) // self.global_batch

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
        for i in range(self.steps_per_epoch()):
            start = i * self.global_batch + self.rank * self.local_batch
            idx = torch.from_numpy(perm[start:start + self.local_batch])
            yield self.x[idx], self.y[idx]  # [b, C, H, W], [b]
