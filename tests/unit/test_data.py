import json

import numpy as np
import torch

from pipeline.config import DatasetConfig
from pipeline.data import load_prepared, meta_path, prepare, to_unit_range
from pipeline.data.npz import sha256_file
from pipeline.train.sharding import ShardedBatches


def test_prepared_digits_have_the_documented_shape_split_and_hash(prepared_digits):
    data = load_prepared(prepared_digits)
    assert data.x_train.shape == (1437, 1, 16, 16) and data.x_test.shape == (360, 1, 16, 16)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert set(np.unique(data.y_test)) == set(range(10))  # stratified: every class in the test split
    assert data.sha256 == sha256_file(prepared_digits)
    unit = to_unit_range(data.x_train)
    assert unit.min() == -1.0 and unit.max() == 1.0


def test_prepare_is_byte_reproducible(tmp_path):
    cfg = DatasetConfig(kind="digits", image_size=8)
    first = prepare(cfg, tmp_path / "a.npz")
    second = prepare(cfg, tmp_path / "b.npz")
    assert first["sha256"] == second["sha256"]
    assert json.loads(meta_path(tmp_path / "a.npz").read_text())["image_size"] == 8


def test_shards_of_two_workers_make_up_the_one_worker_batch():
    x = torch.arange(100).float().view(100, 1, 1, 1)
    y = torch.arange(100)
    one = list(ShardedBatches(x, y, 20, 0, 1, seed=3).epoch(1))
    rank0 = list(ShardedBatches(x, y, 20, 0, 2, seed=3).epoch(1))
    rank1 = list(ShardedBatches(x, y, 20, 1, 2, seed=3).epoch(1))
    assert len(one) == len(rank0) == len(rank1) == 5
    for full, a, b in zip(one, rank0, rank1):
        assert torch.equal(full[1], torch.cat([a[1], b[1]]))
    epoch2 = list(ShardedBatches(x, y, 20, 0, 1, seed=3).epoch(2))
    assert not torch.equal(one[0][1], epoch2[0][1])  # a new permutation every epoch
