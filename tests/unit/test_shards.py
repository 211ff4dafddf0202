"""Parquet shards of a streamed train split: writer/reader round trip, atomic writes, ``prepare``'s
layout, the pyarrow stream and the batches the loop takes from it (no Ray here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.config import DatasetConfig, StackedDigitsConfig
from pipeline.data import load_prepared, prepare, to_unit_range
from pipeline.data.shards import (MANIFEST, iter_shard_batches, load_all, local_stream, read_manifest, shards_path,
                                  write_shards)
from pipeline.schemas import StorageOptions
from pipeline.train.session import LocalSession
from pipeline.train.sharding import StreamedBatches, training_batches


def chunks(sizes, shape=(3, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    for n in sizes:
        yield rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n)


def test_round_trip_is_exact_whatever_the_chunk_sizes(tmp_path):
    x, y = map(np.concatenate, zip(*chunks([7, 300, 1, 450])))
    manifest = write_shards(chunks([7, 300, 1, 450]), tmp_path / "s.shards", rows_per_shard=200)
    assert manifest["n_rows"] == 758 and [s["rows"] for s in manifest["shards"]] == [200, 200, 200, 158]
    assert manifest["shape"] == [3, 8, 8] and manifest["label_max"] == int(y.max())
    assert read_manifest(tmp_path / "s.shards") == manifest
    x2, y2 = load_all(tmp_path / "s.shards")
    assert x2.dtype == np.uint8 and np.array_equal(x2, x) and np.array_equal(y2, y)
    assert [len(b) for b, _ in iter_shard_batches(tmp_path / "s.shards", batch_rows=150)] == [150, 50] * 3 + [150, 8]


def test_a_failed_write_leaves_nothing_and_a_rewrite_replaces_the_old_directory(tmp_path):
    def failing():
        yield from chunks([500])
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_shards(failing(), tmp_path / "s.shards", rows_per_shard=200)
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its temporary sibling
    write_shards(chunks([500]), tmp_path / "s.shards", rows_per_shard=200)
    with pytest.raises(RuntimeError):
        write_shards(failing(), tmp_path / "s.shards", rows_per_shard=200)
    assert read_manifest(tmp_path / "s.shards")["n_rows"] == 500  # the complete old one stays
    write_shards(chunks([90], seed=1), tmp_path / "s.shards", rows_per_shard=200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.shards"]
    assert sorted(p.name for p in (tmp_path / "s.shards").iterdir()) == [MANIFEST, "part-00000.parquet"]


def test_storage_options_choose_by_size_and_reject_unknown_values():
    assert not StorageOptions().streams(10**9) and StorageOptions().streams(2 * 10**9)
    assert StorageOptions(storage="stream").streams(1) and not StorageOptions(storage="memory").streams(10**12)
    assert StorageOptions(stream_above_mb=0.1).streams(200_000)
    with pytest.raises(Exception):
        DatasetConfig(kind="digits", storage="disk")


def test_prepare_streamed_digits_writes_shards_and_an_empty_train_split(tmp_path):
    memory = prepare(DatasetConfig(kind="digits", image_size=16), tmp_path / "mem.npz")
    meta = prepare(DatasetConfig(kind="digits", image_size=16, storage="stream"), tmp_path / "st.npz")
    assert read_manifest(tmp_path / "mem.shards") == {"format": 1, "streamed": False}
    assert "train_shards" not in json.loads((tmp_path / "mem.json").read_text())
    assert meta["train_shards"] == "st.shards" and meta["n_train"] == memory["n_train"] == 1437
    assert meta["n_shards"] == len(meta["shard_sha256"]) == 1 and meta["num_classes"] == 10
    assert meta["sha256"] != meta["npz_sha256"]  # the dataset's identity covers the shards too
    mem, st = load_prepared(tmp_path / "mem.npz"), load_prepared(tmp_path / "st.npz")
    assert st.streamed and not mem.streamed and st.train_shards == str(shards_path(tmp_path / "st.npz").resolve())
    assert st.x_train.shape == (0, 1, 16, 16) and st.y_train.shape == (0,) and st.n_train == 1437
    assert np.array_equal(st.x_test, mem.x_test)
    x, y = map(np.concatenate, zip(*st.iter_train(500)))
    assert np.array_equal(x, mem.x_train) and np.array_equal(y, mem.y_train)


def test_streamed_stacked_digits_are_the_in_memory_samples(tmp_path):
    cfg = {"kind": "stacked_digits", "image_size": 8, "n_train": 6000, "n_test": 100}
    prepare(StackedDigitsConfig(**cfg), tmp_path / "mem.npz")
    meta = prepare(StackedDigitsConfig(**cfg, storage="stream"), tmp_path / "st.npz")
    assert meta["n_shards"] == 2 and meta["classes_per_channel"] == 10 and meta["num_classes"] == 1000
    x, y = load_all(tmp_path / "st.shards")
    mem = load_prepared(tmp_path / "mem.npz")
    assert np.array_equal(x, mem.x_train) and np.array_equal(y, mem.y_train)


def test_local_stream_serves_full_shuffled_batches_once_per_epoch(tmp_path):
    write_shards(chunks([1000]), tmp_path / "s.shards", rows_per_shard=300)
    epochs = [np.concatenate([b["index"] for b in local_stream(tmp_path / "s.shards", 64, seed, buffer_rows=256)])
              for seed in (1, 2)]
    for seen in epochs:
        assert len(seen) == 1000 // 64 * 64 and len(set(seen.tolist())) == len(seen)
    assert not np.array_equal(epochs[0], epochs[1])


def test_streamed_batches_match_the_in_memory_scaling_and_step_count(tmp_path):
    prepare(DatasetConfig(kind="digits", image_size=16, storage="stream"), tmp_path / "st.npz")
    prepare(DatasetConfig(kind="digits", image_size=16), tmp_path / "mem.npz")
    data, mem = load_prepared(tmp_path / "st.npz"), load_prepared(tmp_path / "mem.npz")
    batches = training_batches(data, 64, 0, 1, seed=0, session=LocalSession(tmp_path / "ckpt"))
    assert isinstance(batches, StreamedBatches) and batches.steps_per_epoch() == 1437 // 64
    seen = list(batches.epoch(0))
    assert len(seen) == 1437 // 64 and all(x.shape == (64, 1, 16, 16) and y.shape == (64,) for x, y in seen)
    expected = torch.from_numpy(to_unit_range(mem.x_train))
    x, y = seen[0]
    rows = [int(np.flatnonzero((expected == xi).flatten(1).all(1))[0]) for xi in x]  # where each image came from
    assert torch.equal(torch.from_numpy(mem.y_train[rows]), y) and x.dtype == torch.float32


def test_evaluator_trains_on_a_streamed_split_and_stores_its_features(tmp_path):
    from pipeline.config import EvaluatorConfig
    from pipeline.data.npz import load_npz
    from pipeline.evaluator import build_evaluator

    prepare(DatasetConfig(kind="digits", image_size=16, storage="stream"), tmp_path / "st.npz")
    data = load_prepared(tmp_path / "st.npz")
    meta = build_evaluator(EvaluatorConfig(epochs=2), data, tmp_path / "evaluator")
    assert meta["n_train"] == 1437 and meta["test_accuracy"] > 0.5
    reference = load_npz(tmp_path / "evaluator" / "reference.npz")
    assert reference["train_features"].shape == (1437, 64) and np.array_equal(data.train_labels(), load_all(
        tmp_path / "st.shards")[1])


def test_the_loop_trains_from_shards_in_process(tmp_path):
    from helpers import tiny_params
    from pipeline.config import parse_params
    from pipeline.train.loop import TrainJob, train_loop

    prepare(DatasetConfig(kind="digits", image_size=16, storage="stream"), tmp_path / "digits.npz")
    cfg = parse_params(tiny_params(epochs=2)).variant("dcgan")
    session = LocalSession(tmp_path / "ckpt")
    train_loop(TrainJob("dcgan", cfg.model_dump(mode="json"), str(tmp_path / "digits.npz")).to_dict(), session)
    assert [(r["epoch"], r["step"]) for r in session.reports] == [(1, 22), (2, 44)]
    assert all(np.isfinite(r["loss/G"]) for r in session.reports)
