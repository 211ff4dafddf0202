"""Fréchet distance between Gaussians fitted to features (FID, Heusel et al. 2017).

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)),   covariances with 1/(n-1).

Written with numpy rather than torchmetrics' ``FrechetInceptionDistance``: our reference statistics
are precomputed once by the evaluator stage and stored on disk (keyed by dataset hash, N and
extractor), while torchmetrics accumulates real images through its own extractor inside the metric
object. The formula is the same; ``tests/unit/test_metrics.py`` checks our value against
torchmetrics on identical features.
"""

from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [d] and unbiased covariance [d, d] of features [N, d], in float64."""
    f = np.asarray(features, dtype=np.float64)
    assert f.ndim == 2 and len(f) >= 2, f"features must be [N >= 2, d], got {f.shape}"
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2 (real and
    non-negative for PSD matrices, up to rounding, hence the complex sqrt and ``.real``); this is
    the route torchmetrics takes and avoids ``sqrtm``'s occasional non-finite results.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape, "feature dimensions differ"
    diff = mu1 - mu2
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)
    trace_sqrt = np.sqrt(eigenvalues).real.sum()
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N, d] and [M, d]."""
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
