"""IDX files, the format of MNIST, Fashion-MNIST, KMNIST and EMNIST (REFERENCE.md).

Big-endian header: a 4-byte magic (two zero bytes, the type code 0x08 = uint8, the number of
dimensions), one uint32 per dimension, then the raw bytes. Images are magic 2051 (0x00000803,
uint8 [N, rows, cols]), labels 2049 (0x00000801, uint8 [N]). Files are usually gzipped: that is
detected by the gzip magic bytes, not by the file name. Everything is checked before use: the
magic, the header's dimensions against the file's length (a truncated file is an error, so are
trailing bytes), and that images and labels are equally many. numpy reads the payload directly;
no library reads IDX without pulling in a framework (torchvision, tensorflow), hence this module.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from pipeline.config import FileSpec
from pipeline.data.convert import fit
from pipeline.data.download import resolve
from pipeline.data.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if they start with the gzip magic."""
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip data ({err})") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file whose magic must be ``magic`` (2051 images, 2049 labels)."""
    raw = read_bytes(path)
    what = "images, uint8 [N, rows, cols]" if magic == IMAGES_MAGIC else "labels, uint8 [N]"
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DataError(f"{path}: IDX magic {found} (0x{found:08x}), expected {magic} (0x{magic:08x}: {what})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "trailing bytes"
        raise DataError(f"{path}: {problem}: header says {'x'.join(map(str, dims))} ({expected:,} bytes), "
                        f"the data has {len(raw):,} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_pair(images: FileSpec, labels: FileSpec) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 1, rows, cols], int64 [N]) from an images file and its labels file."""
    images_path, labels_path = resolve(images), resolve(labels)
    x = read_idx(images_path, IMAGES_MAGIC)
    y = read_idx(labels_path, LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(f"{images_path}: {len(x):,} images but {labels_path} has {len(y):,} labels")
    if len(x) == 0:
        raise DataError(f"{images_path}: no images")
    return x[:, None], y.astype(np.int64)


def load_idx(images: FileSpec, labels: FileSpec, image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Images in the prepared format (uint8 [N, channels, S, S], see pipeline.data.convert) and labels."""
    x, y = read_pair(images, labels)
    return fit(x, image_size, channels), y
