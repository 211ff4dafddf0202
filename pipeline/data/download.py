"""Files a dataset names by ``url`` + ``sha256``: downloaded once into a private cache, verified.

The cache is ``$GAN_LAB_CACHE`` or ``~/.cache/gan-lab`` (created with mode 0700). A download goes to
a temporary file in the cache, is checked against the server's Content-Length and the expected
sha256, and only then renamed into place (:func:`pipeline.artifacts.atomic_path`), so the cache never holds a partial
or wrong file. A cached file is hashed again before each use. Every failure is one-line
:class:`DataError` and leaves nothing behind. urllib is enough here (no extra dependency).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from pipeline.artifacts import atomic_path
from pipeline.config import FileSpec
from pipeline.data.errors import DataError
from pipeline.data.npz import sha256_file

logger = logging.getLogger(__name__)
CHUNK = 1 << 16
TIMEOUT_S = 60.0


def cache_dir() -> Path:
    """The download cache (created 0700: downloads may be licensed data meant for this user only)."""
    root = Path(os.environ.get("GAN_LAB_CACHE") or Path.home() / ".cache" / "gan-lab").expanduser()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def resolve(spec: FileSpec) -> Path:
    """The local file (or folder) of ``spec``: its path, or its url's verified copy in the cache.

    A ``{path, sha256}`` spec checks the local file too. Raises DataError naming the file or url.
    """
    if spec.url is not None:
        return fetch(spec.url, spec.sha256)
    path = Path(spec.path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    if spec.sha256 is not None:
        if not path.is_file():
            raise DataError(f"{path}: a folder; sha256 can only check a file (drop it, or name the archive)")
        digest = sha256_file(path)
        if digest != spec.sha256.lower():
            raise DataError(f"{path}: sha256 is {digest}, params expect {spec.sha256.lower()}")
    return path


def fetch(url: str, sha256: str, timeout: float = TIMEOUT_S) -> Path:
    """The cached copy of ``url``, downloaded first if it is missing or fails its checksum."""
    sha256 = sha256.lower()
    name = Path(urllib.parse.urlsplit(url).path).name or "download"
    dest = cache_dir() / f"{sha256[:16]}-{name}"  # content-addressed: two urls of one file share it
    if dest.is_file():
        if sha256_file(dest) == sha256:
            return dest
        logger.warning("%s: cached copy fails its sha256; downloading it again", dest)
        dest.unlink()
    with atomic_path(dest) as tmp:  # a failed or wrong download raises inside: nothing kept
        with open(tmp, "xb") as out:
            digest = _download(url, out, name, timeout)
        if digest != sha256:
            raise DataError(f"{url}: sha256 of the download is {digest}, params expect {sha256}; nothing kept")
    return dest


def _download(url: str, out: BinaryIO, name: str, timeout: float) -> str:
    """Stream ``url`` into ``out`` with a progress bar; returns the hex sha256 of what arrived."""
    digest, received, expected = hashlib.sha256(), 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, desc=name, leave=False, disable=None) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise DataError(f"{url}: HTTP error {err.code} ({err.reason}); nothing kept") from None
    except http.client.IncompleteRead as err:
        got = received + len(err.partial)
        raise DataError(f"{url}: truncated transfer, {got} of {expected} bytes; nothing kept") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(f"{url}: download failed ({reason}); nothing kept") from None
    if expected is not None and received != expected:
        raise DataError(f"{url}: truncated transfer, {received} of {expected} bytes; nothing kept")
    return digest.hexdigest()
