"""Equalised learning rate (Karras et al. 2018, section 4.1), as StyleGAN's G and D use it.

A layer stores its weight drawn from N(0, 1) and multiplies it at run time by He's constant
c = gain / sqrt(fan_in): y = (c * W) x + b. The effective weight c * W starts as He's
initialisation would, but an optimiser step on W is a step on the unit scale for every layer,
whatever its fan-in. With Adam, whose steps have about the size of the learning rate, a plain layer
of 576 inputs (PyTorch's default: weights uniform within +-0.042, rms 0.024) changes by several per
cent per step at lr 1e-3; with the
equalised rate it changes by 0.1%, as much as a layer of 16 inputs does. docs/stylegan.md measures
what that does to the discriminator.

``equalized=False`` gives the plain PyTorch layers (nn.Linear, nn.Conv2d with their default
initialisation, or He's where ``he_init``), so the two can be compared on the same architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_GAIN = math.sqrt(2.0)  # He's gain for ReLU-like layers (StyleGAN uses it for LeakyReLU(0.2) too)


class EqualLinear(nn.Module):
    """y = x (c W)^T + b, W ~ N(0, 1), c = gain / sqrt(in_features)."""

    def __init__(self, in_features: int, out_features: int, gain: float = LEAKY_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    """A stride-1 convolution with 'same' padding and weight c W, W ~ N(0, 1),
    c = gain / sqrt(in_channels * k * k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = LEAKY_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def linear(in_features: int, out_features: int, equalized: bool, gain: float = LEAKY_GAIN,
           he_init: bool = False) -> nn.Module:
    """An :class:`EqualLinear` with ``gain``, or a plain nn.Linear: PyTorch's default initialisation,
    or He's (LeakyReLU 0.2) with zero bias where ``he_init``; ``gain`` is not used for plain layers."""
    if equalized:
        return EqualLinear(in_features, out_features, gain)
    layer = nn.Linear(in_features, out_features)
    if he_init:
        nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
        nn.init.zeros_(layer.bias)
    return layer


def conv2d(in_channels: int, out_channels: int, kernel_size: int, equalized: bool,
           gain: float = LEAKY_GAIN) -> nn.Module:
    """An :class:`EqualConv2d` with ``gain``, or a plain nn.Conv2d with 'same' padding and PyTorch's
    default initialisation (``gain`` is not used for it)."""
    if equalized:
        return EqualConv2d(in_channels, out_channels, kernel_size, gain)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
