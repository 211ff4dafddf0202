"""The per-node copy of the prepared data a Ray worker reads when it cannot see the driver's file.

The copy lives in a per-user directory that only its owner can enter (``$XDG_CACHE_HOME/gan-lab``,
else ``<tmp>/gan-lab-<uid>``, mode 0700), so another user of the node can neither plant a file
where a worker will look nor swap one in later; a directory there that another user owns, or that
others may write to, or that is a symlink, is refused rather than used. A cached copy is re-hashed
every time it is reused (a truncated or altered file is replaced from the object store, never
trained on), and copies are written atomically (:mod:`pipeline.artifacts`).

No Ray here: the launcher passes the fetch (``ray.get``) in, and the tests call it directly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from pipeline.artifacts import atomic_write_bytes
from pipeline.data import meta_path
from pipeline.data.npz import sha256_file

log = logging.getLogger(__name__)
CACHE_ENV = "XDG_CACHE_HOME"


class CacheError(RuntimeError):
    """The cache directory is not safe to use, or the data does not match its hash (one line)."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/gan-lab`` if set, else ``<tmp>/gan-lab-<uid>`` (not yet checked or created)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "gan-lab"
    return Path(tempfile.gettempdir()) / f"gan-lab-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """``path`` as a directory only this user can use: created 0700, or an existing one that is a
    real directory (not a symlink), owned by this user and not writable by group or others (then
    tightened to 0700). CacheError naming the problem otherwise."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"{path}: refused as the data cache: not a directory (a symlink or file); remove it "
                         f"or set {CACHE_ENV}")
    if info.st_uid != os.getuid():
        raise CacheError(f"{path}: refused as the data cache: owned by uid {info.st_uid}, not by this user "
                         f"(uid {os.getuid()}); remove it or set {CACHE_ENV}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheError(f"{path}: refused as the data cache: writable by group or others (mode "
                         f"{stat.S_IMODE(info.st_mode):o}); remove it or set {CACHE_ENV}")
    os.chmod(path, 0o700)
    return path


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_copy(name: str, sha256: str, meta_sha256: str, fetch: Callable[[], dict[str, bytes]],
                root: Path | None = None) -> Path:
    """The path of a verified local copy of prepared data file ``name`` (and its sidecar JSON).

    ``sha256``/``meta_sha256``: the hex digests of the ``.npz`` and its JSON; ``fetch()`` returns
    ``{"npz": bytes, "json": bytes}`` (from Ray's object store) and is called only when there is no
    intact copy. ``root``: the cache directory (default :func:`cache_root`).
    """
    if not re.fullmatch(r"[0-9a-f]{64}", sha256) or Path(name).name != name or name in ("", ".", ".."):
        raise CacheError(f"data cache: refused entry {sha256!r}/{name!r} (a sha256 and a plain file name expected)")
    folder = private_dir(root or cache_root()) / sha256
    local = folder / name
    if local.is_file() and meta_path(local).is_file():
        if sha256_file(local) == sha256 and sha256_file(meta_path(local)) == meta_sha256:
            return local
        log.warning("%s: the cached copy does not match its sha256; replacing it from the object store", local)
    blobs = fetch()
    if _digest(blobs["npz"]) != sha256 or _digest(blobs["json"]) != meta_sha256:
        raise CacheError(f"{name}: the data sent through Ray's object store does not match its sha256")
    folder.mkdir(mode=0o700, exist_ok=True)
    atomic_write_bytes(meta_path(local), blobs["json"])
    atomic_write_bytes(local, blobs["npz"])  # last: an .npz in place means its JSON is too
    return local
