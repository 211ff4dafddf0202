"""Session adapter for a single-process Ray Tune trial (``ray.tune.*``), used by PBT: the trial's
checkpoints are Tune checkpoints, so PBT can hand one trial's checkpoint to another (exploit)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

import pipeline.train.ray_env  # noqa: F401  (must precede `import ray`)
import ray.tune
from ray.tune import Checkpoint

from pipeline.data.shards import local_stream


class RayTuneSession:
    """Maps the loop's Session onto ``ray.tune.report`` / ``ray.tune.get_checkpoint`` (one process)."""

    world_rank = 0
    world_size = 1

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=checkpoint)  # persists the checkpoint before returning

    def stream_batches(self, shards_dir: str, batch_size: int, shuffle_seed: int) -> Iterator[dict[str, np.ndarray]]:
        """A streamed train split read by this one process with pyarrow (a PBT trial has no Ray Train dataset)."""
        return local_stream(shards_dir, batch_size, shuffle_seed)

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.tune.get_checkpoint()  # after a PBT exploit: the better trial's checkpoint
        return checkpoint.to_directory() if checkpoint else None
