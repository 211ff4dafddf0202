"""Bring uint8 images of any size and channel count to the prepared format ``[N, C, S, S]``.

Rules (the same for every reader):

- size: a square source up to 4 px smaller than ``S`` is zero-padded evenly (MNIST's 28x28 -> 32x32,
  the classic LeNet padding): pixels stay exact. Any other size is centre-cropped to a square and
  resized with PIL's Lanczos filter (antialiased when shrinking), one channel plane at a time.
- channels: grey -> RGB replicates the plane; RGB -> grey is ITU-R 601-2 luma, exactly as PIL's
  ``convert("L")`` computes it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MAX_PAD = 4  # at most this many pixels of zero border are added instead of resizing


def square_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre square crop, then Lanczos resize to ``size`` x ``size`` (the same framing as resizing
    the shorter side to ``size`` and centre-cropping the longer one)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img if side == size else img.resize((size, size), Image.LANCZOS)


def fit_size(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, C, H, W] -> [N, C, size, size] by the rules of the module docstring."""
    n, c, h, w = images.shape
    if h == w and 0 <= size - h <= MAX_PAD:
        before = (size - h) // 2
        pad = ((0, 0), (0, 0), (before, size - h - before), (before, size - h - before))
        return np.pad(images, pad) if size != h else images
    planes = images.reshape(n * c, h, w)
    resized = np.stack([np.asarray(square_resize(Image.fromarray(p), size)) for p in planes])
    return resized.reshape(n, c, size, size)


def fit_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [N, 1 or 3, H, W] -> [N, channels, H, W]."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=1)
    assert have == 3 and channels == 1, f"cannot convert {have} channels to {channels}; use 1 or 3"
    # PIL's fixed-point ITU-R 601-2 luma (libImaging/Convert.c, L24), vectorised over the whole batch
    # instead of one PIL call per image; equal to Image.convert("L") pixel for pixel.
    r, g, b = (images[:, k].astype(np.uint32) for k in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, None]


def fit(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Channels first (resizing one grey plane is cheaper than three), then size."""
    return fit_size(fit_channels(images, channels), size)
