"""Two-domain data: typed digits, unpaired batches, and the user's image folders (including broken ones)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers import ROOT
from pipeline.config import ImageFoldersConfig, TypedDigitsConfig
from pipeline.data import load_prepared, prepare
from pipeline.data.folders import FolderError, load_domains
from pipeline.data.typed import font_names, typed_digit_images
from pipeline.train.sharding import UnpairedBatches


def test_typed_digits_are_deterministic_balanced_and_distinct_per_seed():
    x, y = typed_digit_images(60, 16, seed=3)
    x2, y2 = typed_digit_images(60, 16, seed=3)
    assert x.shape == (60, 1, 16, 16) and x.dtype == np.uint8
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.bincount(y).tolist() == [6] * 10
    assert not np.array_equal(typed_digit_images(60, 16, seed=4)[0], x)
    assert x.reshape(60, -1).max(1).min() > 100  # every image has ink
    assert len(font_names()) >= 10  # Pillow's font and matplotlib's


def test_typed_digits_dataset_kind(tmp_path):
    meta = prepare(TypedDigitsConfig(kind="typed_digits", image_size=8, n_train=50, n_test=20), tmp_path / "t.npz")
    data = load_prepared(tmp_path / "t.npz")
    assert meta["num_classes"] == 10 and data.x_train.shape == (50, 1, 8, 8) and not data.unpaired


def test_unpaired_batches_draw_each_domain_independently_and_shard_by_rank():
    a, b = torch.arange(50).view(50, 1), torch.arange(1000, 1020).view(20, 1)
    one = UnpairedBatches(a, b, 10, 0, 1, seed=1)
    assert one.steps_per_epoch() == 5  # max(50, 20) // 10: the smaller domain is cycled
    batches = list(one.epoch(0))
    seen_a = torch.cat([x for x, _ in batches]).flatten()
    seen_b = torch.cat([x for _, x in batches]).flatten()
    assert sorted(seen_a.tolist()) == list(range(50))  # each A image once per epoch
    assert set(seen_b.tolist()) == set(range(1000, 1020)) and len(seen_b) == 50
    ranks = [list(UnpairedBatches(a, b, 10, r, 2, seed=1).epoch(0)) for r in (0, 1)]
    for i, (x_a, x_b) in enumerate(batches):  # two workers together see the one-worker batches
        assert torch.equal(torch.cat([ranks[0][i][0], ranks[1][i][0]]), x_a)
        assert torch.equal(torch.cat([ranks[0][i][1], ranks[1][i][1]]), x_b)
    assert not torch.equal(torch.cat([x for x, _ in UnpairedBatches(a, b, 10, 0, 1, 1).epoch(1)]).flatten(), seen_a)


def write_images(folder, count, mode="RGB", size=(20, 12), suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new(mode, size, color=(i * 20, 100, 50) if mode == "RGB" else i * 20).save(folder / f"img{i}{suffix}")


def test_image_folders_are_converted_split_and_prepared(tmp_path):
    write_images(tmp_path / "trainA", 10)
    write_images(tmp_path / "trainB", 5, mode="L", suffix=".jpg")
    arrays = load_domains(tmp_path, channels=3, image_size=8, test_fraction=0.2, seed=0)
    assert arrays["x_train"].shape == (8, 3, 8, 8) and arrays["x_test"].shape == (2, 3, 8, 8)
    assert arrays["x_train_b"].shape == (4, 3, 8, 8) and arrays["x_test_b"].shape == (1, 3, 8, 8)
    write_images(tmp_path / "testA", 2)
    write_images(tmp_path / "testB", 3)
    cfg = ImageFoldersConfig(kind="image_folders", path=str(tmp_path), channels=1, image_size=8)
    meta = prepare(cfg, tmp_path / "out" / "folders.npz")
    data = load_prepared(tmp_path / "out" / "folders.npz")
    assert meta["num_classes"] == 0 and data.unpaired and data.x_test_b.shape == (3, 1, 8, 8)
    assert data.x_train.shape == (10, 1, 8, 8) and (data.y_train == -1).all()


@pytest.mark.parametrize("breakage,message", [
    ("corrupt", "trainB/broken.png: not a readable image"),
    ("empty", "trainB: no images (.png, .jpg, .jpeg) in this folder"),
    ("missing", "wrong layout, missing trainB/"),
    ("half_test", "wrong layout, give both testA/ and testB/ or neither"),
])
def test_broken_folders_stop_prepare_naming_the_file_and_write_nothing(tmp_path, breakage, message):
    root = tmp_path / "pics"
    write_images(root / "trainA", 4)
    if breakage != "missing":
        (root / "trainB").mkdir()
    if breakage == "corrupt":
        write_images(root / "trainB", 3)
        (root / "trainB" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    if breakage == "half_test":
        write_images(root / "trainB", 3)
        write_images(root / "testA", 2)
    with pytest.raises(FolderError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_domains(root, 3, 8, 0.25, 0)

    params = {"datasets": {"mine": {"kind": "image_folders", "path": str(root), "image_size": 8,
                                   "test_fraction": 0.25}},
              "evaluators": {}, "variants": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "prepared" / "mine.npz"
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py"), "--dataset", "mine", "--out",
                           str(out), "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: datasets.mine: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "prepared").exists() or not any((tmp_path / "prepared").iterdir())
