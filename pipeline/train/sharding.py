"""Sharded in-memory batches: the DistributedSampler contract for data that fits in memory.

Each epoch draws one permutation from (seed, epoch), identical on every rank; global batch i is
``perm[i*B:(i+1)*B]`` and rank r takes its slice ``[r*b:(r+1)*b]`` (b = B / world_size). The last
incomplete global batch is dropped, so every rank takes the same number of steps (the all-reduce
and ``report`` barriers need that), and 1 worker with batch B sees exactly the batches that 2
workers with batch B see together.

A train split kept in Parquet shards (larger than memory) is served by :class:`StreamedBatches`
from the Session's stream (under Ray Train, a Ray Data shard of the dataset per worker).
"""

from __future__ import annotations

from typing import Any, Iterator

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


class StreamedBatches:
    """Batches of a streamed train split, from ``session.stream_batches`` (each rank its own
    disjoint part of every epoch; the order reshuffled per epoch by the stream).

    Every rank stops after ``n_train // global_batch`` steps (the number the in-memory path takes),
    so all ranks all-reduce and report the same number of times even if their streams differ in
    length by a batch. Images go from uint8 to [-1, 1] as in memory (``as_training_array``).
    """

    def __init__(self, session: Any, data: Prepared, global_batch: int, rank: int, world_size: int, seed: int,
                 device: torch.device | str = "cpu"):
        assert global_batch % world_size == 0, (
            f"global batch {global_batch} must be a multiple of world_size {world_size}")
        assert data.n_train >= global_batch, (
            f"dataset of {data.n_train} images is smaller than one batch ({global_batch})")
        assert hasattr(session, "stream_batches"), f"{type(session).__name__} cannot stream a train split from shards"
        self.session, self.data, self.device = session, data, device
        self.global_batch, self.rank, self.seed = global_batch, rank, seed
        self.local_batch = global_batch // world_size
        self.shape = (data.spec.channels, data.spec.image_size, data.spec.image_size)

    def steps_per_epoch(self) -> int:
        return self.data.n_train // self.global_batch

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shuffle_seed = int(np.random.SeedSequence([self.seed, self.rank, epoch, 1]).generate_state(1)[0])
        stream = self.session.stream_batches(self.data.train_shards, self.local_batch, shuffle_seed)
        steps = 0
        for batch in stream:
            x = torch.from_numpy(as_training_array(batch["image"].reshape(-1, *self.shape)))
            yield x.to(self.device), torch.from_numpy(batch["label"]).to(self.device)  # [b, C, H, W], [b]
            steps += 1
            if steps == self.steps_per_epoch():
                break  # the other ranks stop here too: equal step counts keep the collectives paired
        assert steps == self.steps_per_epoch(), (
            f"rank {self.rank}: the stream ended after {steps} of {self.steps_per_epoch()} batches of {self.local_batch}")


def training_batches(data: Prepared, global_batch: int, rank: int, world_size: int, seed: int,
                     device: torch.device | str = "cpu",
                     session: Any = None) -> ShardedBatches | UnpairedBatches | StreamedBatches:
    """The batches a family trains on: (x, y) of one dataset, or (x_A, x_B) of two unpaired domains.
    Arrays go to ``device`` once, up front; a streamed split comes through ``session`` batch by batch."""
    if data.streamed:
        return StreamedBatches(session, data, global_batch, rank, world_size, seed, device)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(as_training_array(array) if array.dtype != np.int64 else array).to(device)

    if data.unpaired:
        return UnpairedBatches(tensor(data.x_train), tensor(data.x_train_b), global_batch, rank, world_size, seed)
    return ShardedBatches(tensor(data.x_train), tensor(data.y_train), global_batch, rank, world_size, seed)
