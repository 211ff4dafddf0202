"""CIFAR-10, binary version (REFERENCE.md), from its folder or straight from its ``.tar.gz``.

``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) and ``test_batch.bin`` (test): records of
3,073 bytes, one label byte then 1,024 R, 1,024 G and 1,024 B bytes (row-major 32x32), 10,000 per
file in the real set; ``batches.meta.txt`` names the classes, one per line. The archive's members
are read with :mod:`tarfile` into memory (nothing is extracted to disk, so no member path can
escape); the real archive keeps them under ``cifar-10-batches-bin/``. A missing file, a batch whose
length is not a whole number of records, or a label without a class name is a :class:`DataError`.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.convert import fit
from pipeline.data.errors import DataError

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # 3,073 bytes: label, R plane, G plane, B plane
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
NEEDED = (*TRAIN_FILES, TEST_FILE, META_FILE)


@dataclass(frozen=True)
class Cifar10:
    """Both splits in the prepared format and the class names (index = label)."""

    x_train: np.ndarray  # [50000, C, S, S] uint8
    y_train: np.ndarray  # [50000] int64
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


def read_members(source: Path) -> dict[str, bytes]:
    """The needed files' bytes from a folder or a tar archive (gzipped or not), by file name."""
    if source.is_dir():
        found = {name: (source / name).read_bytes() for name in NEEDED if (source / name).is_file()}
    else:
        found = _read_tar(source)
    missing = [name for name in NEEDED if name not in found]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)} (expected the CIFAR-10 binary version)")
    return found


def _read_tar(source: Path) -> dict[str, bytes]:
    """Regular members whose name is a needed file, at the top or in one folder (any name)."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                name = posixpath.basename(member.name)
                if member.isfile() and name in NEEDED and member.name.count("/") <= 1:
                    if name in found:
                        raise DataError(f"{source}: two members named {name}; which one is meant?")
                    found[name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{source}: not a readable tar archive ({err})") from None
    return found


def parse_batch(name: str, data: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 3, 32, 32], int64 [N]) from one batch file's bytes."""
    if len(data) == 0 or len(data) % RECORD:
        raise DataError(f"{name}: {len(data):,} bytes is not a whole number of {RECORD:,}-byte records")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)  # [N, 3073]
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= num_classes:
        raise DataError(f"{name}: label {labels.max()} but batches.meta.txt names only {num_classes} classes")
    return records[:, 1:].reshape(-1, 3, SIDE, SIDE), labels


def load_cifar10(source: str | Path, image_size: int, channels: int) -> Cifar10:
    """Read and check every file, then convert (pipeline.data.convert: grey = ITU-R 601-2 luma)."""
    source = Path(source)
    files = read_members(source)
    class_names = [line.strip() for line in files[META_FILE].decode("utf-8", "replace").splitlines()
                   if line.strip()]
    where = (lambda name: f"{source}/{name}") if source.is_dir() else (lambda name: f"{source}:{name}")
    train = [parse_batch(where(name), files[name], len(class_names)) for name in TRAIN_FILES]
    x_test, y_test = parse_batch(where(TEST_FILE), files[TEST_FILE], len(class_names))
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Cifar10(fit(x_train, image_size, channels), y_train, fit(x_test, image_size, channels), y_test,
                   class_names)
