"""The runtime seen by the per-worker loop (DESIGN.md section 4).

The loop only talks to a :class:`Session`; adapters map it to Ray Train workers
(``pipeline.train.ray_session``), Ray Tune trials, or, here, a plain in-process run used by tests
and by the plain-PyTorch baseline of the benchmarks.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from pipeline.artifacts import atomic_path
from pipeline.data.shards import local_stream


class Session(Protocol):
    world_rank: int
    world_size: int

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        """Called the same number of times by every rank; only rank 0 passes a checkpoint."""

    def latest_checkpoint(self) -> str | None:
        """Local directory of the checkpoint to resume from, or None for a fresh start."""

    def stream_batches(self, shards_dir: str, batch_size: int, shuffle_seed: int) -> Iterator[dict[str, np.ndarray]]:
        """One epoch of this rank's part of a streamed train split, ``batch_size`` rows a batch
        (``image`` uint8 [b, C*H*W], ``label`` and ``index`` int64 [b]); full batches only.
        ``shards_dir`` serves sessions that read the shards themselves; under Ray Train the
        trainer's dataset is used instead. Optional: only needed for streamed datasets."""


class LocalSession:
    """Single-process session: checkpoints are copied to ``storage_dir/checkpoint_NNNNNN``."""

    world_rank = 0
    world_size = 1

    def __init__(self, storage_dir: str | Path):
        self.storage_dir = Path(storage_dir)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.reports: list[dict[str, Any]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            latest = self.latest_checkpoint()
            index = int(Path(latest).name.split("_")[1]) + 1 if latest else 1
            with atomic_path(self.storage_dir / f"checkpoint_{index:06d}", directory=True) as tmp:
                shutil.copytree(checkpoint_dir, tmp, dirs_exist_ok=True)

    def stream_batches(self, shards_dir: str, batch_size: int, shuffle_seed: int) -> Iterator[dict[str, np.ndarray]]:
        """The whole split (one process), shuffled with pyarrow alone (no Ray)."""
        return local_stream(shards_dir, batch_size, shuffle_seed)

    def latest_checkpoint(self) -> str | None:
        found = sorted(self.storage_dir.glob("checkpoint_*"))  # (a copy in progress is hidden: .checkpoint_*)
        return str(found[-1]) if found else None
