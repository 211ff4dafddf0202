"""A streamed train split (Parquet shards) trained through Ray Train and Ray Data with 2 workers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_params, wait_until_ray_is_idle
from pipeline.config import DatasetConfig, parse_params
from pipeline.data import prepare
from pipeline.train.launcher import run_training, streaming_cpus
from pipeline.train.loop import TrainJob

pytestmark = pytest.mark.integration


def recording_worker(record_dir: Path):
    """The real loop on a Ray Train session whose stream records which rows each rank was served."""

    def worker(job: dict) -> None:
        from pipeline.train.loop import train_loop
        from pipeline.train.ray_session import RayTrainSession

        session = RayTrainSession()
        stream, epoch = session.stream_batches, [0]

        def recording_stream(shards_dir, batch_size, shuffle_seed):
            path = record_dir / f"rank{session.world_rank}-epoch{epoch[0]}.txt"
            epoch[0] += 1
            with open(path, "w") as handle:
                for batch in stream(shards_dir, batch_size, shuffle_seed):
                    handle.write(" ".join(map(str, batch["index"])) + "\n")
                    handle.flush()
                    yield batch

        session.stream_batches = recording_stream
        train_loop(job, session)

    return worker


def seen(record_dir: Path, rank: int, epoch: int) -> list[int]:
    return [int(i) for i in (record_dir / f"rank{rank}-epoch{epoch}.txt").read_text().split()]


def test_two_workers_stream_disjoint_reshuffled_parts_of_each_epoch(ray_cluster, tmp_path):
    data_path = tmp_path / "digits.npz"
    meta = prepare(DatasetConfig(kind="digits", image_size=16, storage="stream"), data_path)
    assert meta["train_shards"] == "digits.shards" and (tmp_path / "digits.shards" / "part-00000.parquet").is_file()

    cfg = parse_params(tiny_params(num_workers=2, epochs=2, max_failures=0)).variant("dcgan")
    job = TrainJob("dcgan", cfg.model_dump(mode="json"), str(data_path))
    record = tmp_path / "seen"
    record.mkdir()
    wait_until_ray_is_idle(ray_cluster)  # the Data reads need CPUs that the last test's workers may still hold
    try:
        result = run_training(job, cfg, str(tmp_path / "ray"), "dcgan", recording_worker(record))
    except Exception as error:  # name what waited, so a hang on CI can be diagnosed from its log
        from ray.util.state import list_tasks

        waiting = [(t.name, t.state) for t in list_tasks(filters=[("state", "!=", "FINISHED")])]
        raise AssertionError(f"streamed training failed; free {ray_cluster.available_resources()}, "
                             f"unfinished tasks {waiting}") from error

    steps = 1437 // 64
    assert result.metrics["step"] == 2 * steps and math.isfinite(result.metrics["loss/G"])
    for epoch in (0, 1):
        ranks = [seen(record, rank, epoch) for rank in (0, 1)]
        assert [len(r) for r in ranks] == [steps * 32] * 2  # both ranks: the same number of steps
        assert not set(ranks[0]) & set(ranks[1]), f"epoch {epoch}: the workers were served the same rows"
        assert all(0 <= i < 1437 for r in ranks for i in r) and len(set(ranks[0])) == len(ranks[0])
    assert seen(record, 0, 0) != seen(record, 0, 1), "epoch 2 served rank 0 its rows in epoch 1's order"
    assert len({tuple(seen(record, 0, e)) for e in (0, 1)}) == 2


def test_streaming_leaves_a_cpu_to_ray_data():
    assert streaming_cpus(1, 1, 2) == (1.0, 1.0)  # 1 worker x 1 CPU on 2 CPUs: one left for Data
    assert streaming_cpus(1, 2, 2) == (0.5, 1.0)  # 2 workers on 2 CPUs: would hang holding both
    assert streaming_cpus(2, 1, 2) == (1.0, 1.0)
    assert streaming_cpus(2, 2, 16) == (2.0, 12.0)
    with pytest.raises(ValueError, match="streaming needs 1 CPU"):
        streaming_cpus(1, 2, 1)
