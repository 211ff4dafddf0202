"""Stacked digits (the Stacked-MNIST protocol of REFERENCE.md, built from scikit-learn's digits).

Each sample stacks three independently drawn digit images as its three channels, so there are
10^3 = 1,000 modes (class triples). The label is the mode index ``100*c0 + 10*c1 + c2``.
Train samples are drawn from the digits train split and test samples from its test split, so
no test digit image is ever seen in training.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

DIGIT_CLASSES = 10
CHANNELS = 3


def stack_digits(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stacked samples from single-digit ``images`` [M, 1, S, S] with ``labels`` [M].

    Returns (uint8 [n, 3, S, S], int64 mode index [n]); channel k holds an independent uniform draw.
    """
    assert images.shape[1] == 1, f"stacking needs one-channel digit images, got {images.shape[1]} channels"
    picks = np.random.default_rng(seed).integers(0, len(images), size=(n, CHANNELS))  # [n, 3]
    stacked = images[picks, 0]  # [n, 3, S, S]
    return stacked, mode_index(labels[picks])


def stack_digit_chunks(images: np.ndarray, labels: np.ndarray, n: int, seed: int,
                       chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`stack_digits` drawn ``chunk`` samples at a time, for writing shards of a train split
    larger than memory (one seeded stream of draws: the same samples whatever ``chunk`` is)."""
    assert images.shape[1] == 1, f"stacking needs one-channel digit images, got {images.shape[1]} channels"
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        picks = rng.integers(0, len(images), size=(min(chunk, n - start), CHANNELS), dtype=np.int64)  # [c, 3]
        yield images[picks, 0], mode_index(labels[picks])  # [c, 3, S, S], [c]


def mode_index(channel_labels: np.ndarray) -> np.ndarray:
    """[n, 3] per-channel classes -> [n] mode index 100*c0 + 10*c1 + c2."""
    return (channel_labels * DIGIT_CLASSES ** np.arange(CHANNELS - 1, -1, -1)).sum(1).astype(np.int64)


def channel_labels(modes: np.ndarray) -> np.ndarray:
    """[n] mode index -> [n, 3] per-channel classes (inverse of :func:`mode_index`)."""
    return np.stack([(modes // DIGIT_CLASSES ** k) % DIGIT_CLASSES for k in range(CHANNELS - 1, -1, -1)], 1)


def unstack(images: np.ndarray, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct single-digit images in stacked ``images`` [n, 3, S, S] and their classes.

    What the per-channel evaluator classifier trains and is tested on: every channel as its own
    one-channel image, duplicates removed (each source image recurs in many stacks).
    """
    singles = images.reshape(-1, 1, *images.shape[2:])  # [3n, 1, S, S]
    classes = channel_labels(modes).reshape(-1)
    _, first = np.unique(singles.reshape(len(singles), -1), axis=0, return_index=True)
    first = np.sort(first)
    return singles[first], classes[first]
