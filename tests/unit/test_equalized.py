"""The equalised learning rate (pipeline.models.equalized) and StyleGAN's use of it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.models.equalized import EqualConv2d, EqualLinear, conv2d, linear
from pipeline.models.stylegan import StyleDiscriminator, StyleGenerator


def test_effective_weights_start_at_hes_scale_and_match_a_plain_layer():
    torch.manual_seed(0)
    conv = EqualConv2d(64, 32, 3)
    effective = conv.weight * conv.scale
    assert abs(float(effective.std()) - math.sqrt(2 / (64 * 9))) < 0.05 * math.sqrt(2 / (64 * 9))
    x = torch.randn(2, 64, 8, 8)
    plain = nn.Conv2d(64, 32, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(effective)
        plain.bias.copy_(conv.bias)
    assert torch.allclose(conv(x), plain(x), atol=1e-5)
    lin = EqualLinear(16, 4, gain=1.0)
    assert torch.allclose(lin(torch.eye(16)), (lin.weight / 4.0).T)  # c = 1 / sqrt(16)


def _relative_change_after_one_adam_step(layer: nn.Module, x: torch.Tensor) -> float:
    """|change of the effective weight| / |effective weight| after one Adam step of lr 1e-3."""
    def effective():
        return (layer.weight * getattr(layer, "scale", 1.0)).detach().clone()

    before = effective()
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3, betas=(0.0, 0.99))
    layer(x).square().mean().backward()
    opt.step()
    return float((effective() - before).norm() / before.norm())


@pytest.mark.parametrize("equalized", [True, False])
def test_equalised_layers_learn_at_the_same_relative_speed_whatever_their_fan_in(equalized):
    torch.manual_seed(0)
    small = conv2d(1, 8, 3, equalized)  # fan-in 9
    large = conv2d(64, 8, 3, equalized)  # fan-in 576
    ratio = (_relative_change_after_one_adam_step(large, torch.randn(4, 64, 8, 8))
             / _relative_change_after_one_adam_step(small, torch.randn(4, 1, 8, 8)))
    if equalized:  # both about lr / 1: the same relative step
        assert 0.8 < ratio < 1.25, ratio
    else:  # a plain layer's weights are ~1/sqrt(fan_in): the wide layer moves sqrt(576 / 9) = 8x faster
        assert ratio > 5, ratio


def test_stylegan_builds_equalised_layers_by_default_and_plain_ones_when_asked():
    def kinds(*nets):
        return {type(m) for net in nets for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d,
                                                                                 EqualLinear, EqualConv2d))}

    assert kinds(StyleGenerator(8, 16, 2, 1, 16, 8), StyleDiscriminator(1, 16, 8)) == {EqualLinear, EqualConv2d}
    assert kinds(StyleGenerator(8, 16, 2, 1, 16, 8, equalized_lr=False),
                 StyleDiscriminator(1, 16, 8, equalized_lr=False)) == {nn.Linear, nn.Conv2d}
    assert isinstance(linear(3, 4, equalized=False, he_init=True), nn.Linear)
