"""Dataset registry and the prepared-data format.

A prepared dataset is one ``.npz`` with ``x_train``/``x_test`` (uint8 images ``[N, C, H, W]``, or
float32 2-D points ``[N, 2]``) and ``y_train``/``y_test`` (int64 ``[N]``: class or mode index), plus
a JSON sidecar with its sha256 and shape (and, for mixtures, the modes). Training code sees images
scaled to [-1, 1] (the range of G's tanh output) and points as they are (:func:`as_training_array`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.config import DatasetConfig, MixtureDatasetConfig, StackedDigitsConfig
from pipeline.data.digits import load_digit_images
from pipeline.data.mixtures import MIXTURES, sample_mixture
from pipeline.data.stacked import DIGIT_CLASSES, stack_digits
from pipeline.data.npz import load_npz, save_npz

# Explicit registry: dataset kind -> loader returning (images uint8 [N, C, S, S], labels [N]).
LOADERS: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digit_images,
}


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data (``point_dim > 0``: points, not images)."""

    channels: int
    image_size: int
    num_classes: int
    point_dim: int = 0


def prepare(cfg: DatasetConfig | MixtureDatasetConfig, out_path: str | Path) -> dict:
    """Build the dataset, split it (seeded), write the ``.npz`` and its sidecar JSON.

    Returns the sidecar dict (sha256, sizes, spec).
    """
    if isinstance(cfg, MixtureDatasetConfig):
        return prepare_mixture(cfg, out_path)
    if isinstance(cfg, StackedDigitsConfig):
        return prepare_stacked(cfg, out_path)
    images, labels = LOADERS[cfg.kind](cfg.image_size)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=labels)
    return _write_images(out_path, cfg.kind, x_train, x_test, y_train, y_test)


def prepare_stacked(cfg: StackedDigitsConfig, out_path: str | Path) -> dict:
    """Split the digits as ``prepare`` does, then stack train digits into train samples and test
    digits into test samples (independent seeded draws)."""
    images, labels = load_digit_images(cfg.image_size)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=labels)
    x_train, y_train = stack_digits(x_train, y_train, cfg.n_train, seed=cfg.seed)
    x_test, y_test = stack_digits(x_test, y_test, cfg.n_test, seed=cfg.seed + 1)
    return _write_images(out_path, cfg.kind, x_train, x_test, y_train, y_test,
                         num_classes=DIGIT_CLASSES ** 3, classes_per_channel=DIGIT_CLASSES)


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
        "num_classes": num_classes or int(max(y_train.max(), y_test.max()) + 1),
        **extra,
    }
    meta_path(out_path).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def prepare_mixture(cfg: MixtureDatasetConfig, out_path: str | Path) -> dict:
    """Independent train and test draws from the mixture; the sidecar records its modes."""
    x_train, y_train = sample_mixture(cfg.kind, cfg.n_train, seed=cfg.seed)
    x_test, y_test = sample_mixture(cfg.kind, cfg.n_test, seed=cfg.seed + 1)
    sha = save_npz(out_path, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    means, std = MIXTURES[cfg.kind]()
    meta = {"sha256": sha, "kind": cfg.kind, "n_train": cfg.n_train, "n_test": cfg.n_test, "channels": 0,
            "image_size": 0, "num_classes": len(means), "point_dim": 2, "modes": means.tolist(), "mode_std": std}
    meta_path(out_path).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


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


def load_prepared(npz_path: str | Path) -> Prepared:
    """Load ``prepare``'s output; raises FileNotFoundError naming the stage to run if it is missing."""
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise FileNotFoundError(f"{npz_path}: prepared data not found; run `dvc repro prepare@<dataset>`")
    arrays = load_npz(npz_path)
    meta = json.loads(meta_path(npz_path).read_text())
    spec = DataSpec(meta["channels"], meta["image_size"], meta["num_classes"], meta.get("point_dim", 0))
    return Prepared(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                    meta["sha256"], spec, meta)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


def as_training_array(x: np.ndarray) -> np.ndarray:
    """What G learns to produce: uint8 images scaled to [-1, 1], float points unchanged."""
    return to_unit_range(x) if x.dtype == np.uint8 else x.astype(np.float32)
