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

from pipeline.data import Prepared, as_training_array


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


class UnpairedBatches:
    """Batches of two unpaired domains: step i yields (A images, B images) drawn independently.

    Each domain has its own permutation per epoch (from seed, epoch and the domain), repeated as
    needed: an epoch has max(N_A, N_B) // B steps, so the smaller domain is cycled through more than
    once (as the reference CycleGAN data loader does). Nothing pairs an A image with a B image, and
    the labels are not served at all. Ranks take slices of each global batch as in :class:`ShardedBatches`.
    """

    def __init__(self, x_a: torch.Tensor, x_b: torch.Tensor, global_batch: int, rank: int, world_size: int,
                 seed: int):
        assert global_batch % world_size == 0, (
            f"global batch {global_batch} must be a multiple of world_size {world_size}")
        smallest = min(len(x_a), len(x_b))
        assert smallest >= global_batch, f"a domain of {smallest} images is smaller than one batch ({global_batch})"
        self.x_a, self.x_b = x_a, x_b
        self.global_batch, self.rank, self.world_size, self.seed = global_batch, rank, world_size, seed
        self.local_batch = global_batch // world_size

    def steps_per_epoch(self) -> int:
        return max(len(self.x_a), len(self.x_b)) // self.global_batch

    def _order(self, n: int, epoch: int, domain: int) -> np.ndarray:
        """Enough of this domain's indices for one epoch: successive seeded permutations of range(n)."""
        needed = self.steps_per_epoch() * self.global_batch
        rounds = -(-needed // n)
        return np.concatenate([np.random.default_rng([self.seed, epoch, domain, r]).permutation(n)
                               for r in range(rounds)])

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order_a, order_b = self._order(len(self.x_a), epoch, 0), self._order(len(self.x_b), epoch, 1)
        for i in range(self.steps_per_epoch()):
            start = i * self.global_batch + self.rank * self.local_batch
            idx_a = torch.from_numpy(order_a[start:start + self.local_batch])
            idx_b = torch.from_numpy(order_b[start:start + self.local_batch])
            yield self.x_a[idx_a], self.x_b[idx_b]  # [b, C, H, W] each


def training_batches(data: Prepared, global_batch: int, rank: int, world_size: int, seed: int,
                     device: torch.device | str = "cpu") -> ShardedBatches | UnpairedBatches:
    """The batches a family trains on: (x, y) of one dataset, or (x_A, x_B) of two unpaired domains.
    Arrays go to ``device`` once, up front."""
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(as_training_array(array) if array.dtype != np.int64 else array).to(device)

    if data.unpaired:
        return UnpairedBatches(tensor(data.x_train), tensor(data.x_train_b), global_batch, rank, world_size, seed)
    return ShardedBatches(tensor(data.x_train), tensor(data.y_train), global_batch, rank, world_size, seed)
