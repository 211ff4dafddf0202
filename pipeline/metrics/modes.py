"""Mode-collapse metrics for 2-D mixtures: the PacGAN protocol (Lin et al. 2018, REFERENCE.md).

Each sample is assigned to its nearest mode by Mahalanobis distance (the modes are isotropic
Gaussians, so that is ||x - mu_k|| / std). A sample is *high quality* if that distance is below 3
(within 3 std). A mode is *covered* if at least one high-quality sample is assigned to it. The
reverse KL is KL(p || uniform) of the histogram p of high-quality samples over the modes:

    KL = sum_k p_k log(p_k K),   terms with p_k = 0 contribute 0.

Written by hand: the protocol is a few lines and no maintained library implements it.
"""

from __future__ import annotations

import numpy as np


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
    total = counts.sum()
    if total == 0:
        reverse_kl = float("inf")
    else:
        p = counts[counts > 0] / total
        reverse_kl = float(np.sum(p * np.log(p * len(means))))
    return {"modes": int((counts > 0).sum()), "high_quality": float(high_quality.mean()),
            "reverse_kl": reverse_kl}
