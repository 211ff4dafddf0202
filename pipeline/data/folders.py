"""Unpaired image folders in the layout of the public CycleGAN data sets (horse2zebra and friends):

    <path>/trainA/*.png|jpg   <path>/trainB/*.png|jpg   (optional) <path>/testA/  <path>/testB/

Images are converted to grey (1 channel) or RGB (3), centre-cropped to a square and resized to the
configured side. Without testA/testB a seeded ``test_fraction`` of each train folder is held out.
Every file is read and checked before anything is written: a corrupt or unreadable image, one that
is not PNG or JPEG, one over :data:`MAX_PIXELS` (a decompression bomb), a symlink that leads out
of the dataset folder, an empty folder or a missing trainA/trainB raises :class:`FolderError`
naming the file or folder. The ``image_folder`` kind (pipeline.data.image_folder) reads the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.data.convert import square_resize
from pipeline.data.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = ("PNG", "JPEG")  # the only decoders PIL may use on the user's files
# Above this many pixels an image is refused before it is decoded: a small file can declare a huge
# canvas (a decompression bomb). 64 megapixels is beyond any camera photo a GAN here trains on.
MAX_PIXELS = 64_000_000


class FolderError(DataError):
    """A problem with the user's image folders (one line naming the file or folder)."""


def inside(path: Path, root: Path) -> Path:
    """``path`` itself; FolderError if it is a symlink that resolves outside ``root`` (not followed)
    or into a loop (pathlib raises RuntimeError for those)."""
    if not path.is_symlink():
        return path
    try:
        target = path.resolve()
    except (RuntimeError, OSError) as err:
        raise FolderError(f"{path}: symlink that cannot be resolved ({err}); not followed") from None
    if not target.is_relative_to(root.resolve()):
        raise FolderError(f"{path}: symlink to {target}, outside {root}; not followed")
    return path


def image_files(folder: Path, root: Path | None = None) -> list[Path]:
    """The PNG/JPEG files of ``folder`` in name order; FolderError if it has none.

    Other files are skipped. Symlinks must stay inside ``root`` (default: ``folder``).
    """
    if not folder.is_dir():
        raise FolderError(f"{folder}: folder not found")
    root = folder if root is None else root
    inside(folder, root)
    files = sorted(inside(p, root) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FolderError(f"{folder}: no images (.png, .jpg, .jpeg) in this folder")
    return files


def load_image(path: Path, channels: int, image_size: int) -> np.ndarray:
    """One image as uint8 [C, S, S]: grey or RGB, centre-cropped square, resized (Lanczos).

    Only a regular file is opened: a named pipe or device called ``x.png`` would block the read forever."""
    if not path.is_file():
        raise FolderError(f"{path}: not a regular file (a pipe, device or broken link); only PNG and JPEG files")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's own limit, as an error
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                if img.width * img.height > MAX_PIXELS:  # checked from the header, before decoding
                    raise FolderError(f"{path}: {img.width}x{img.height} pixels, over the limit of "
                                      f"{MAX_PIXELS:,} (a decompression bomb?)")
                img.load()  # decode now, so that a truncated file fails here
                img = img.convert("L" if channels == 1 else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise FolderError(f"{path}: refused as a decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise FolderError(f"{path}: not a readable image (not PNG or JPEG, or corrupt)") from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, FolderError):
            raise
        raise FolderError(f"{path}: not a readable image ({err})") from None
    pixels = np.asarray(square_resize(img, image_size), np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def load_folder(folder: Path, channels: int, image_size: int, root: Path | None = None) -> np.ndarray:
    """Every image of ``folder`` as uint8 [N, C, S, S] (symlinks must stay inside ``root``)."""
    return np.stack([load_image(p, channels, image_size) for p in image_files(folder, root)])


def load_domains(root: str | Path, channels: int, image_size: int, test_fraction: float,
                 seed: int) -> dict[str, np.ndarray]:
    """``{x_train, x_test, x_train_b, x_test_b}`` (A unsuffixed, B with ``_b``) from ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FolderError(f"{root}: folder not found (expected trainA/ and trainB/ inside)")
    missing = [name for name in ("trainA", "trainB") if not (root / name).is_dir()]
    if missing:
        raise FolderError(f"{root}: wrong layout, missing {' and '.join(missing)}/ (expected trainA/, "
                          f"trainB/ and optionally testA/, testB/)")
    has_test = [(root / name).is_dir() for name in ("testA", "testB")]
    if any(has_test) and not all(has_test):
        raise FolderError(f"{root}: wrong layout, give both testA/ and testB/ or neither")
    arrays = {}
    for domain, suffix in (("A", ""), ("B", "_b")):
        train = load_folder(root / f"train{domain}", channels, image_size, root)
        if all(has_test):
            test = load_folder(root / f"test{domain}", channels, image_size, root)
        else:
            train, test = _split(train, test_fraction, seed, root / f"train{domain}")
        arrays[f"x_train{suffix}"], arrays[f"x_test{suffix}"] = train, test
    return arrays


def _split(images: np.ndarray, test_fraction: float, seed: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    n_test = int(round(len(images) * test_fraction))
    if n_test < 1 or n_test >= len(images):
        raise FolderError(f"{folder}: {len(images)} images cannot be split with test_fraction {test_fraction}; "
                          f"add images or a test{folder.name[-1]}/ folder")
    perm = np.random.default_rng(seed).permutation(len(images))
    return images[perm[n_test:]], images[perm[:n_test]]
