"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic kernel

    k(x, y) = (x . y / d + 1)^3,
    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1)) - 2 mean k(x_i, y_j),

averaged over random subsets of size m = min(subset_size, N); reported as mean and std over
subsets. Unbiased, so its expectation is 0 for equal distributions at any N (it can be negative).
"""

from __future__ import annotations

import numpy as np


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-size samples x, y [m, d] under the cubic polynomial kernel."""
    m, d = x.shape
    assert y.shape == (m, d), f"KID subsets must have equal shapes, got {x.shape} and {y.shape}"
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    off_diagonal = m * (m - 1)
    return float((k_xx.sum() - np.trace(k_xx)) / off_diagonal + (k_yy.sum() - np.trace(k_yy)) / off_diagonal
                 - 2.0 * k_xy.mean())


def kid(features_real: np.ndarray, features_gen: np.ndarray, n_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``n_subsets`` random subsets drawn without replacement."""
    real = np.asarray(features_real, np.float64)
    gen = np.asarray(features_gen, np.float64)
    m = min(subset_size, len(real), len(gen))
    assert m >= 2, "KID needs at least 2 samples per set"
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2_unbiased(gen[rng.choice(len(gen), m, replace=False)],
                                       real[rng.choice(len(real), m, replace=False)])
              for _ in range(n_subsets)]
    return float(np.mean(values)), float(np.std(values))
