"""Image helpers (numpy + PIL): grids of samples for MLflow, the report and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.artifacts import atomic_path


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float images [N, C, H, W] -> uint8 [N, C, H, W]."""
    return ((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).round().astype(np.uint8)


def make_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 2) -> np.ndarray:
    """Tile uint8 images [N, C, H, W] into one uint8 picture [rows*H', cols*W', 3] (grey -> RGB)."""
    assert images.dtype == np.uint8 and images.ndim == 4, "make_grid wants uint8 [N, C, H, W]; use to_uint8"
    n, c, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    rgb = np.repeat(images, 3, axis=1) if c == 1 else images[:, :3]
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = rgb[i].transpose(1, 2, 0)
    if scale > 1:
        grid = np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8))
    return grid


def scatter_points(points: np.ndarray, modes: np.ndarray | None = None, size_px: int = 320) -> np.ndarray:
    """A scatter plot of 2-D samples [N, 2] (and the true modes, if given) as uint8 RGB [H, W, 3]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(size_px / 80, size_px / 80), dpi=80)
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, label="samples")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="red", label="modes")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    plt.close(fig)
    return picture


def preview(samples: np.ndarray) -> np.ndarray:
    """A picture of samples: a grid of images [N, C, H, W] in [-1, 1], or a scatter of points [N, 2]."""
    if samples.ndim == 2:
        return scatter_points(samples)
    return make_grid(to_uint8(samples))


def save_png(picture: np.ndarray, path: str | Path) -> None:
    """``picture`` (uint8 [H, W] or [H, W, 3]) as an image file, atomically (the format follows the suffix)."""
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp)

