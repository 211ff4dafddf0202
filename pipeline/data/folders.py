"""Unpaired image folders in the layout of the public CycleGAN data sets (horse2zebra and friends):

    <path>/trainA/*.png|jpg   <path>/trainB/*.png|jpg   (optional) <path>/testA/  <path>/testB/

Images are converted to grey (1 channel) or RGB (3), centre-cropped to a square and resized to the
configured side. Without testA/testB a seeded ``test_fraction`` of each train folder is held out.
Every file is read and checked before anything is written: a corrupt or unreadable image, an
empty folder or a missing trainA/trainB raises :class:`FolderError` naming the file or folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class FolderError(ValueError):
    """A problem with the user's image folders (one line naming the file or folder)."""


def image_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files of ``folder`` in name order; FolderError if it has none."""
    if not folder.is_dir():
        raise FolderError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FolderError(f"{folder}: no images (.png, .jpg, .jpeg) in this folder")
    return files


def load_image(path: Path, channels: int, image_size: int) -> np.ndarray:
    """One image as uint8 [C, S, S]: grey or RGB, centre-cropped square, resized (Lanczos)."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so that a truncated file fails here
            img = img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise FolderError(f"{path}: not a readable image ({err})") from None
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    pixels = np.asarray(img.resize((image_size, image_size), Image.LANCZOS), np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def load_folder(folder: Path, channels: int, image_size: int) -> np.ndarray:
    """Every image of ``folder`` as uint8 [N, C, S, S]."""
    return np.stack([load_image(p, channels, image_size) for p in image_files(folder)])


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
        train = load_folder(root / f"train{domain}", channels, image_size)
        if all(has_test):
            test = load_folder(root / f"test{domain}", channels, image_size)
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
