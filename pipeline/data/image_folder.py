"""The user's images for one-domain families: a flat folder, or one subfolder per class.

    <path>/*.png|jpg                      unlabelled: labels -1, num_classes 0
    <path>/<class_name>/*.png|jpg         labelled: class index = position of the name in sorted
                                          order (torchvision's ImageFolder convention)

Images of any size are centre-cropped to a square and resized (pipeline.data.convert), as grey or
RGB. Stricter than CycleGAN's ``image_folders`` (pipeline.data.folders), whose image reader it
shares: every entry must be a PNG or JPEG file (hidden dot-files are skipped), so a stray file is
an error rather than silently left out of the data; so are an empty class folder, a class folder
with a folder inside, files and folders mixed at the top, a corrupt image, a decompression bomb
and a symlink leading out of ``path``. All of it is checked before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.folders import IMAGE_SUFFIXES, FolderError, inside, load_image


@dataclass(frozen=True)
class FolderImages:
    """Every image of the folder with its label, and the class names (empty when unlabelled)."""

    images: np.ndarray  # [N, C, S, S] uint8
    labels: np.ndarray  # [N] int64, -1 when unlabelled
    class_names: list[str]


def entries(folder: Path, root: Path) -> list[Path]:
    """The visible entries of ``folder`` in name order (symlinks must stay inside ``root``)."""
    return sorted(inside(p, root) for p in folder.iterdir() if not p.name.startswith("."))


def strict_image_files(folder: Path, root: Path) -> list[Path]:
    """The images of ``folder``: FolderError for anything that is not a PNG/JPEG file, or none."""
    files = entries(folder, root)
    for path in files:
        if path.is_dir():
            raise FolderError(f"{path}: a folder inside a class folder; put the images directly in {folder}")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise FolderError(f"{path}: not an image file; only PNG and JPEG (.png, .jpg, .jpeg) are accepted")
    if not files:
        raise FolderError(f"{folder}: no images (.png, .jpg, .jpeg) in this folder")
    return files


def load_image_folder(path: str | Path, channels: int, image_size: int) -> FolderImages:
    """Read and check every image under ``path`` (see the module docstring for the layouts)."""
    root = Path(path)
    if not root.is_dir():
        raise FolderError(f"{root}: folder not found")
    top = entries(root, root)
    folders = [p for p in top if p.is_dir()]
    if folders and len(folders) != len(top):
        files = [p.name for p in top if not p.is_dir()]
        raise FolderError(f"{root}: a mix of files ({', '.join(files[:3])}) and class subfolders at the top; "
                          f"use one subfolder per class, or only images")
    if not folders:
        files = strict_image_files(root, root)
        images = np.stack([load_image(p, channels, image_size) for p in files])
        return FolderImages(images, np.full(len(files), -1, np.int64), [])
    images, labels = [], []
    for index, folder in enumerate(folders):
        files = strict_image_files(folder, root)
        images += [load_image(p, channels, image_size) for p in files]
        labels += [index] * len(files)
    return FolderImages(np.stack(images), np.asarray(labels, np.int64), [p.name for p in folders])
