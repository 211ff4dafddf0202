"""2-D Gaussian mixtures of the mode-collapse benchmarks (PacGAN, REFERENCE.md).

- ``ring8``: 8 modes at (cos 2 pi k/8, sin 2 pi k/8), std 0.01.
- ``grid25``: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.

Points are drawn with a uniformly random mode each; the label is the mode index.
"""

from __future__ import annotations

import numpy as np


def ring8_modes() -> tuple[np.ndarray, float]:
    """(means [8, 2], std)."""
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01


def grid25_modes() -> tuple[np.ndarray, float]:
    """(means [25, 2], std)."""
    axis = np.arange(-4.0, 5.0, 2.0)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1), 0.05


MIXTURES = {"ring8": ring8_modes, "grid25": grid25_modes}


def sample_mixture(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (float32 [n, 2]) and their mode labels (int64 [n]), reproducible for a seed."""
    means, std = MIXTURES[kind]()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(means), size=n)
    points = means[labels] + std * rng.standard_normal((n, 2))
    return points.astype(np.float32), labels.astype(np.int64)
