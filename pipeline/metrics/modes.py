"""Mode-collapse metrics: the PacGAN protocol (Lin et al. 2018, REFERENCE.md).

2-D mixtures (:func:`mode_metrics`):

Each sample is assigned to its nearest mode by Mahalanobis distance (the modes are isotropic
Gaussians, so that is ||x - mu_k|| / std). A sample is *high quality* if that distance is below 3
(within 3 std). A mode is *covered* if at least one high-quality sample is assigned to it. The
reverse KL is KL(p || uniform) of the histogram p of high-quality samples over the modes:

    KL = sum_k p_k log(p_k K),   terms with p_k = 0 contribute 0.

Stacked digits (:func:`stacked_mode_metrics`): a sample's mode is the triple of classes the
evaluator classifier predicts for its three channels; report the number of distinct triples and
KL(p || uniform over the 1,000 triples), the same formula with K = 1,000.

Written by hand: the protocol is a few lines and no maintained library implements it.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.stacked import CHANNELS, DIGIT_CLASSES, mode_index


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) of the histogram ``counts`` over K = len(counts) bins; inf for an empty one."""
    total = counts.sum()
    if total == 0:
        return float("inf")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def stacked_mode_metrics(channel_classes: np.ndarray) -> dict:
    """``modes`` (distinct class triples) and ``kl`` to uniform, from predictions [N, 3]."""
    counts = np.bincount(mode_index(channel_classes), minlength=DIGIT_CLASSES ** CHANNELS)
    return {"modes": int((counts > 0).sum()), "kl": kl_to_uniform(counts)}


def mode_metrics(samples: np.ndarray, means: np.ndarray, std: float, threshold: float = 3.0) -> dict:
    """``modes`` covered, ``high_quality`` share of samples, ``reverse_kl`` of the mode histogram.

    Args:
        samples: generated points [N, 2].
        means: mode centres [K, 2].
        std: the (isotropic) standard deviation of every mode.
    """
    samples = np.asarray(samples, np.float64)
    assert samples.ndim == 2 and samples.shape[1] == means.shape[1], (
        f"samples must be [N, {means.shape[1]}], got {samples.shape}")
    distances = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=2) / std  # [N, K]
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(samples)), nearest] < threshold
    counts = np.bincount(nearest[high_quality], minlength=len(means))
    return {"modes": int((counts > 0).sum()), "high_quality": float(high_quality.mean()),
            "reverse_kl": kl_to_uniform(counts)}
