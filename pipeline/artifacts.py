"""The on-disk outputs' one write rule: write beside the target, then ``os.replace`` it into place.

A reader therefore sees either the old complete file (or directory) or the new complete one, never
a truncated one, even when the writer is killed mid-write: ``os.replace`` is atomic on POSIX
within one file system, which is why the temporary sits in the target's own directory. A killed
writer leaves at most a hidden ``.<name>.*.tmp`` behind, which no reader opens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``target`` (a file path not yet created, or an empty
    directory); the caller writes it, and on a clean exit it replaces ``target``.

    With ``directory=True`` the temporary is an (empty) directory and an existing ``target``
    directory is swapped out first, then deleted; the gap between the two renames is the only time
    ``target`` is absent, and it is never partial. On an exception the temporary is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{target.name}.", ".tmp"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    else:  # not created: the caller opens it, so it gets the usual mode (mkstemp's is 0600)
        tmp = target.parent / f"{prefix}{secrets.token_hex(8)}{suffix}"
    try:
        yield tmp
        if directory and target.exists():
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=target.parent))
            os.replace(target, old / "dir")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    with atomic_path(target) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))

