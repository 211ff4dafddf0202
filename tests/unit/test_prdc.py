"""Precision/recall and density/coverage: the reference formulas, and the clovaai README example."""

import time

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from pipeline.metrics.prdc import prdc


def reference_prdc(real, fake, k):
    """clovaai/generative-evaluation-prdc's compute_prdc, written out with numpy (<= as in REFERENCE.md)."""
    real_radii = np.sort(pairwise_distances(real), axis=1)[:, k]  # k-th neighbour, self (0) excluded
    fake_radii = np.sort(pairwise_distances(fake), axis=1)[:, k]
    d = pairwise_distances(real, fake)
    return {"precision": (d <= real_radii[:, None]).any(0).mean(), "recall": (d <= fake_radii[None, :]).any(1).mean(),
            "density": (d <= real_radii[:, None]).sum(0).mean() / k, "coverage": (d.min(1) <= real_radii).mean()}


def test_matches_the_reference_formulas_on_random_features():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((400, 8)) + 0.3
    ours = prdc(real, fake, k_pr=4, k_dc=4)
    for key, value in reference_prdc(real.astype(np.float32), fake.astype(np.float32), 4).items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def test_disjoint_and_identical_sets():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((200, 4))
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = prdc(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0


@pytest.mark.slow
def test_clovaai_readme_example_10k_by_10k_in_seconds():
    # README of clovaai/generative-evaluation-prdc: N(0, I) in 1000-D, 10,000 real and 10,000 fake,
    # nearest_k = 5 -> precision 0.4772, recall 0.4705, density 1.0555, coverage 0.9735 (one draw).
    rng = np.random.default_rng(1234)
    real = rng.standard_normal((10_000, 1000), dtype=np.float32)
    fake = rng.standard_normal((10_000, 1000), dtype=np.float32)
    started = time.perf_counter()
    m = prdc(real, fake, k_pr=5, k_dc=5)
    assert time.perf_counter() - started < 60
    assert m["precision"] == pytest.approx(0.4772, abs=0.015) and m["recall"] == pytest.approx(0.4705, abs=0.015)
    assert m["coverage"] == pytest.approx(0.9735, abs=0.01)
    assert m["density"] == pytest.approx(1.0555, abs=0.07)  # density's draw-to-draw spread is larger
