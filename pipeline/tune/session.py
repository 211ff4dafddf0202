"""Session adapter for a single-process Ray Tune trial (``ray.tune.*``), used by PBT: the trial's
checkpoints are Tune checkpoints, so PBT can hand one trial's checkpoint to another (exploit)."""

from __future__ import annotations

from typing import Any

import pipeline.train.ray_env  # noqa: F401  (must precede `import ray`)
import ray.tune
from ray.tune import Checkpoint


class RayTuneSession:
    """Maps the loop's Session onto ``ray.tune.report`` / ``ray.tune.get_checkpoint`` (one process)."""

    world_rank = 0
    world_size = 1

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=checkpoint)  # persists the checkpoint before returning

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.tune.get_checkpoint()  # after a PBT exploit: the better trial's checkpoint
        return checkpoint.to_directory() if checkpoint else None
