"""Session adapter for Ray Train V2 workers (``ray.train.*``)."""

from __future__ import annotations

from typing import Any

import pipeline.train.ray_env  # noqa: F401  (must precede `import ray`)
import ray.train
import ray.train.torch
from ray.train import Checkpoint


class RayTrainSession:
    """Maps the loop's Session onto ``ray.train.report`` / ``ray.train.get_checkpoint``."""

    def __init__(self) -> None:
        context = ray.train.get_context()
        self.world_rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)  # a barrier: every rank calls it

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.train.get_checkpoint()
        return checkpoint.to_directory() if checkpoint else None
