"""Session adapter for Ray Train V2 workers (``ray.train.*``)."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator

import numpy as np

import pipeline.train.ray_env  # noqa: F401  (must precede `import ray`)
import ray
import ray.train
import ray.train.torch
from ray.train import Checkpoint

from pipeline.data.shards import table_columns

log = logging.getLogger(__name__)

# Rows each worker shuffles locally (Ray Data's local shuffle buffer), on top of the per-epoch
# reshuffle of the shard order: ~4 MB of 1x16x16 rows, ~50 MB at 3x64x64.
SHUFFLE_BUFFER_ROWS = 4096


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

    def stream_batches(self, shards_dir: str, batch_size: int, shuffle_seed: int) -> Iterator[dict[str, np.ndarray]]:
        """This worker's split of the trainer's ``train`` dataset for one epoch (``shards_dir`` is
        unused: the launcher built the dataset). Ray Data gives every worker a disjoint, equal part
        (``streaming_split(equal=True)``) and re-reads the shards in a new order each epoch."""
        shard = ray.train.get_dataset_shard("train")
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="pyarrow", drop_last=True,
                                        local_shuffle_buffer_size=SHUFFLE_BUFFER_ROWS,
                                        local_shuffle_seed=shuffle_seed):
            yield table_columns(batch)

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.train.get_checkpoint()
        return checkpoint.to_directory() if checkpoint else None


def log_placement(session: RayTrainSession, job: dict[str, Any]) -> None:
    """Where the workers run: each rank's Ray node (id, address) and device. Rank 0 logs the list
    and, when the job has an MLflow run, tags it ``ray.workers`` (JSON), so a run shows how it
    was spread over a cluster (after a worker restart, the placement of the latest attempt)."""
    import torch.distributed as dist

    mine = {"rank": session.world_rank, "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "device": str(session.device)}
    places: list[Any] = [mine]
    if session.world_size > 1 and dist.is_initialized():
        places = [None] * session.world_size
        dist.all_gather_object(places, mine)
    if session.world_rank != 0:
        return
    log.info("workers: %s", ", ".join(f"rank {p['rank']} on {p['node_ip']} ({p['device']})" for p in places))
    if job.get("run_id"):
        from pipeline.tracking import RunLogger

        RunLogger(job["tracking_uri"], job["run_id"]).set_tags({"ray.workers": json.dumps(places)[:5000]})
