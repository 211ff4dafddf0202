"""2-D mixtures, the PacGAN mode metrics on constructed samples, and the MLP GAN shapes."""

import math

import numpy as np
import pytest
import torch

from pipeline.data.mixtures import grid25_modes, ring8_modes, sample_mixture
from pipeline.metrics.modes import mode_metrics
from pipeline.models.mlp import MLPDiscriminator, MLPGenerator


def test_mixtures_have_the_published_modes():
    ring, ring_std = ring8_modes()
    grid, grid_std = grid25_modes()
    assert ring.shape == (8, 2) and np.allclose(np.linalg.norm(ring, axis=1), 1.0) and ring_std == 0.01
    assert grid.shape == (25, 2) and set(np.unique(grid)) == {-4.0, -2.0, 0.0, 2.0, 4.0} and grid_std == 0.05
    points, labels = sample_mixture("ring8", 4000, seed=1)
    assert points.shape == (4000, 2) and points.dtype == np.float32
    assert np.abs(points - ring[labels]).max() < 6 * ring_std
    assert np.array_equal(sample_mixture("ring8", 10, seed=1)[0], sample_mixture("ring8", 10, seed=1)[0])


def test_real_samples_cover_every_mode_with_near_zero_reverse_kl():
    means, std = grid25_modes()
    points, _ = sample_mixture("grid25", 2500, seed=0)
    m = mode_metrics(points, means, std)
    assert m["modes"] == 25 and m["high_quality"] > 0.98 and m["reverse_kl"] < 0.02


def test_one_mode_gives_log_k_reverse_kl():
    means, std = ring8_modes()
    m = mode_metrics(np.repeat(means[:1], 100, axis=0), means, std)
    assert m == {"modes": 1, "high_quality": 1.0, "reverse_kl": pytest.approx(math.log(8))}


def test_off_mode_points_are_not_high_quality_and_cover_nothing():
    means, std = ring8_modes()
    m = mode_metrics(np.zeros((50, 2)), means, std)  # the ring's centre: 100 std from every mode
    assert m["modes"] == 0 and m["high_quality"] == 0.0 and m["reverse_kl"] == float("inf")


def test_the_three_std_boundary_is_exclusive():
    means, std = ring8_modes()
    inside = means[0] + np.array([2.999 * std, 0.0])
    on_edge = means[1] + np.array([3.0 * std, 0.0]) * 1.0000001
    m = mode_metrics(np.stack([inside, on_edge]), means, std)
    assert m["modes"] == 1 and m["high_quality"] == 0.5


@pytest.mark.parametrize("out_dim, tanh", [(2, False), (256, True)])
def test_mlp_shapes_for_points_and_flattened_images(out_dim, tanh):
    G = MLPGenerator(z_dim=2, out_dim=out_dim, hidden=32, layers=4, tanh=tanh)
    D = MLPDiscriminator(in_dim=out_dim, hidden=16, layers=3)
    x = G(torch.randn(5, 2))
    assert x.shape == (5, out_dim)
    assert D(x).shape == (5,)
    if tanh:
        assert x.abs().max() <= 1.0
        assert D(x.view(5, 1, 16, 16)).shape == (5,)  # images are flattened by D
