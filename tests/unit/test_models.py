import pytest
import torch

from pipeline.augment import diff_augment
from pipeline.models.dcgan import DCGANDiscriminator, DCGANGenerator
from pipeline.models.evaluator import EvaluatorCNN


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_for_each_image_size(size, channels):
    G = DCGANGenerator(z_dim=8, channels=channels, image_size=size, width=8)
    D = DCGANDiscriminator(channels=channels, image_size=size, width=8)
    images = G(torch.randn(3, 8))
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1.0  # tanh output
    assert D(images).shape == (3,)


def test_dcgan_rejects_sizes_it_cannot_produce():
    with pytest.raises(AssertionError, match="power of two"):
        DCGANGenerator(z_dim=8, channels=1, image_size=12)


def test_dcgan_init_follows_radford():
    G = DCGANGenerator(z_dim=64, channels=1, image_size=16, width=64)
    weight = G.net[0].weight
    assert abs(weight.mean().item()) < 0.002 and weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_spectral_norm_discriminator_bounds_every_conv_and_saves_as_tensors(tmp_path):
    """SN-GAN's D (Miyato et al. 2018): no BatchNorm, each conv weight W used as W / sigma(W)."""
    torch.manual_seed(0)
    D = DCGANDiscriminator(channels=1, image_size=32, width=8, norm="spectral")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    x = torch.randn(16, 1, 32, 32)
    for _ in range(30):  # one power iteration per forward pass in training mode
        D(x)
    D.eval()
    sigmas = [torch.linalg.matrix_norm(c.weight.flatten(1), ord=2).item() for c in convs]
    assert sigmas == pytest.approx([1.0] * 4, abs=0.02), sigmas
    raw = [torch.linalg.matrix_norm(c.parametrizations.weight.original.flatten(1), ord=2).item() for c in convs]
    assert max(abs(s - 1) for s in raw) > 0.1  # the stored weights themselves are not normalised
    torch.save(D.state_dict(), tmp_path / "d.pt")  # a checkpoint loads with weights_only=True
    copy = DCGANDiscriminator(channels=1, image_size=32, width=8, norm="spectral")
    copy.load_state_dict(torch.load(tmp_path / "d.pt", weights_only=True))
    copy.eval()
    assert torch.equal(copy(x), D(x))


def test_evaluator_logits_and_features():
    model = EvaluatorCNN(channels=1, num_classes=10, feature_dim=32)
    x = torch.randn(5, 1, 16, 16)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, 32)


@pytest.mark.parametrize("policies", [["translation"], ["cutout"], ["translation", "cutout"]])
def test_diff_augment_keeps_shape_and_passes_gradients(policies):
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    out = diff_augment(x, policies)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cutout_zeroes_at_most_a_quarter_of_each_image():
    out = diff_augment(torch.ones(64, 1, 16, 16), ["cutout"])
    zero_share = (out == 0).float().mean(dim=(1, 2, 3))
    # An 8x8 square (a quarter) whose centre is anywhere in the image: at least 4x4 stays inside.
    assert torch.all(zero_share >= 16 / 256) and torch.all(zero_share <= 0.25)
    assert (zero_share == 0.25).any()


def test_no_policies_is_identity():
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(diff_augment(x, []), x)


def test_recalibrated_batchnorm_holds_the_statistics_of_the_modules_own_activations():
    from pipeline.families.base import recalibrate_batchnorm

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net[1].running_mean.fill_(100.0)  # stale statistics, e.g. copied from another network
    inputs = []

    def make_input(generator):
        inputs.append(torch.randn(50, 3, generator=generator) + 2.0)
        return inputs[-1]

    recalibrate_batchnorm(net, make_input, batches=4)
    with torch.no_grad():
        activations = net[0](torch.cat(inputs))
    assert torch.allclose(net[1].running_mean, activations.mean(0), atol=1e-5)
    assert not net.training
