"""Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

With real features X (N of them), generated features Y (M), and NND_k(v) the distance from v to
its k-th nearest neighbour in its own set (itself excluded):

    precision = (1/M) sum_j 1[exists i: ||Y_j - X_i|| <= NND_k(X_i)]        (k = 3)
    recall    = (1/N) sum_i 1[exists j: ||X_i - Y_j|| <= NND_k(Y_j)]        (k = 3)
    density   = (1/(kM)) sum_j sum_i 1[||Y_j - X_i|| <= NND_k(X_i)]         (k = 5)
    coverage  = (1/N) sum_i 1[min_j ||X_i - Y_j|| <= NND_k(X_i)]            (k = 5)

Written with torch (no maintained PyPI package covers all four without pulling extra stacks);
distances are computed in row blocks so 10,000 x 10,000 features fit in memory and take seconds.
It reproduces the clovaai/generative-evaluation-prdc reference values (see the unit tests).
"""

from __future__ import annotations

import numpy as np
import torch

_BLOCK = 2048  # rows of the distance matrix held at once


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist" if a.shape[1] < 8 else "use_mm_for_euclid_dist")


def kth_neighbour_distances(x: torch.Tensor, ks: tuple[int, ...]) -> list[torch.Tensor]:
    """For each k in ``ks``: [N] distance from each row of x [N, d] to its k-th nearest other row.
    One pass over the N x N distances serves every k (the pass is most of prdc's time)."""
    out: list[list[torch.Tensor]] = [[] for _ in ks]
    for i in range(0, len(x), _BLOCK):
        d = _distances(x[i:i + _BLOCK], x)  # [B, N]; includes the zero self-distance
        nearest = d.topk(max(ks) + 1, dim=1, largest=False).values  # sorted, self first
        for found, k in zip(out, ks):
            found.append(nearest[:, k])
    return [torch.cat(found) for found in out]


def kth_neighbour_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """[N] distance from each row of x [N, d] to its k-th nearest other row."""
    return kth_neighbour_distances(x, (k,))[0]


def prdc(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """precision, recall (k_pr), density, coverage (k_dc) of features ``fake`` against ``real``."""
    x = torch.as_tensor(real, dtype=torch.float32)
    y = torch.as_tensor(fake, dtype=torch.float32)
    assert x.ndim == 2 and y.ndim == 2 and x.shape[1] == y.shape[1], (
        f"real and fake must be [N, d] and [M, d], got {list(x.shape)} and {list(y.shape)}")
    real_pr, real_dc = kth_neighbour_distances(x, (k_pr, k_dc))
    fake_pr = kth_neighbour_distance(y, k_pr)
    fake_in_real = torch.zeros(len(y), dtype=torch.bool)   # precision: Y_j inside some real ball (k_pr)
    density_hits = torch.zeros(len(y), dtype=torch.float64)  # density: how many real balls (k_dc) hold Y_j
    real_covered = torch.zeros(len(x), dtype=torch.bool)     # coverage: X_i's ball (k_dc) holds some Y_j
    real_in_fake = torch.zeros(len(x), dtype=torch.bool)     # recall: X_i inside some fake ball (k_pr)
    for i in range(0, len(x), _BLOCK):
        d = _distances(x[i:i + _BLOCK], y)  # [B, M]
        fake_in_real |= (d <= real_pr[i:i + _BLOCK, None]).any(0)
        density_hits += (d <= real_dc[i:i + _BLOCK, None]).sum(0).double()
        real_covered[i:i + _BLOCK] = d.min(1).values <= real_dc[i:i + _BLOCK]
        real_in_fake[i:i + _BLOCK] = (d <= fake_pr[None, :]).any(1)
    return {"precision": float(fake_in_real.double().mean()), "recall": float(real_in_fake.double().mean()),
            "density": float(density_hits.mean() / k_dc), "coverage": float(real_covered.double().mean())}
