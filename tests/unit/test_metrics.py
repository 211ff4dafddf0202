import numpy as np
import pytest
import torch

from pipeline.metrics import feature_stats, fid, frechet_distance, kid, polynomial_mmd2_unbiased


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_two_gaussians_matches_the_closed_form():
    # For N(mu1, s1^2 I) and N(mu2, s2^2 I) in d dims: FID = |mu1 - mu2|^2 + d (s1 - s2)^2.
    d, s1, s2 = 8, 1.0, 2.0
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    exact = frechet_distance(mu1, s1**2 * np.eye(d), mu2, s2**2 * np.eye(d))
    assert exact == pytest.approx(d * 0.25 + d * (s1 - s2) ** 2)
    # Non-diagonal covariances: FID is invariant to a common rotation.
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(d, d)))
    a, b = np.diag(np.linspace(1, 3, d)), np.diag(np.linspace(2, 0.5, d))
    expected = np.sum((np.sqrt(np.diag(a)) - np.sqrt(np.diag(b))) ** 2)
    assert frechet_distance(mu1, q @ a @ q.T, mu1, q @ b @ q.T) == pytest.approx(expected, rel=1e-9)


def test_fid_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, size=(20000, 4)), rng.normal(1, 1, size=(20000, 4))
    assert fid(x, y) == pytest.approx(4.0, rel=0.03)


def identity_extractor(dim: int) -> torch.nn.Module:
    """A torchmetrics feature extractor that passes features through, so both sides see the same ones."""

    class Identity(torch.nn.Module):
        num_features = dim

        def forward(self, x):
            return x

    return Identity()


def test_fid_agrees_with_torchmetrics_on_identical_features():
    torchmetrics_fid = pytest.importorskip("torchmetrics.image.fid")
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 12)), rng.normal(0.3, 1.2, size=(300, 12))
    metric = torchmetrics_fid.FrechetInceptionDistance(feature=identity_extractor(12), normalize=True)
    metric.update(torch.tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.tensor(fake, dtype=torch.float64), real=False)
    assert fid(real, fake) == pytest.approx(metric.compute().item(), rel=1e-4)


def test_kid_is_unbiased_on_equal_distributions():
    rng = np.random.default_rng(4)
    estimates = [polynomial_mmd2_unbiased(rng.normal(size=(50, 8)), rng.normal(size=(50, 8)))
                 for _ in range(400)]
    mean, sem = np.mean(estimates), np.std(estimates) / np.sqrt(len(estimates))
    assert abs(mean) < 3 * sem
    # A biased (V-statistic) estimate would sit clearly above zero here.
    assert np.mean(estimates) < np.std(estimates)


def test_kid_detects_a_shift_and_reports_std():
    rng = np.random.default_rng(5)
    real, same, shifted = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(0.5, 1, (400, 8))
    mean_same, std_same = kid(real, same, n_subsets=20, subset_size=200)
    mean_shift, _ = kid(real, shifted, n_subsets=20, subset_size=200)
    assert std_same > 0 and mean_shift > 10 * abs(mean_same)


def test_kid_agrees_with_torchmetrics_on_one_full_subset():
    torchmetrics_kid = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(100, 6)), rng.normal(0.2, 1, size=(100, 6))
    metric = torchmetrics_kid.KernelInceptionDistance(feature=identity_extractor(6), subsets=1, subset_size=100,
                                                      normalize=True)
    metric.update(torch.tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.tensor(fake, dtype=torch.float64), real=False)
    ours, _ = kid(real, fake, n_subsets=1, subset_size=100)
    assert ours == pytest.approx(metric.compute()[0].item(), rel=1e-6)


def test_feature_stats_use_unbiased_covariance():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, cov = feature_stats(x)
    assert np.allclose(mu, [2.0, 4.0])
    assert np.allclose(cov, np.cov(x.T, ddof=1))
