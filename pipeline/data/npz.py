"""Byte-reproducible ``.npz`` files and their sha256.

``numpy.savez`` stamps the current time into each zip entry, so the same arrays give a different
file (and a different DVC hash, re-running every downstream stage) on every run. We write the zip
ourselves with a fixed timestamp; the format is still a plain ``.npz`` that ``numpy.load`` reads
with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from pipeline.artifacts import atomic_path

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | Path, **arrays: np.ndarray) -> str:
    """Atomically write ``arrays`` to ``path`` (same arrays -> same bytes); returns the file's sha256."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue())
    return sha256_file(path)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
