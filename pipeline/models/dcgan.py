"""DCGAN generator and discriminator (Radford et al. 2016), sized for any power-of-two image.

G: z [N, z_dim] -> 4x4 feature map (transposed conv) -> doubling blocks (ConvTranspose 4/2/1,
BatchNorm, ReLU) -> tanh image [N, C, S, S]. D mirrors it: strided convs with LeakyReLU(0.2),
BatchNorm except on the input layer, no pooling, no fully connected hidden layers, one logit.
Weights are drawn from N(0, 0.02) (BatchNorm scale from N(1, 0.02)), as in the paper.
``DCGANDiscriminator(norm="layer" | "none")`` is the same D without BatchNorm, as the WGAN-GP critic
needs it (Gulrajani et al. 2017: the penalty is per sample, and BatchNorm couples the samples).
``norm="spectral"`` is the SN-GAN discriminator (Miyato et al. 2018): no BatchNorm, and every conv's
weight divided by its largest singular value, W / sigma(W), sigma estimated by one power iteration
per forward pass in training mode, so that D is 1-Lipschitz per layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def num_doublings(image_size: int) -> int:
    """How many x2 steps take a 4x4 map to ``image_size`` (which must be a power of two >= 8)."""
    steps = int(math.log2(image_size)) - 2
    assert image_size == 4 * 2**steps and steps >= 1, (
        f"image_size {image_size} must be a power of two >= 8 for DCGAN")
    return steps


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, width: int = 64):
        super().__init__()
        steps = num_doublings(image_size)
        self.z_dim = z_dim
        top = width * 2 ** (steps - 1)  # channels at 4x4; halves at each doubling
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, top, 4, 1, 0, bias=False), nn.BatchNorm2d(top), nn.ReLU(True)]
        ch = top
        for _ in range(steps - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]  # no BatchNorm on the output
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.dim() == 2 and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}], got {list(z.shape)}"
        return self.net(z[:, :, None, None])  # [N, C, S, S] in [-1, 1]


D_NORMS = ("batch", "layer", "none", "spectral")


def hidden_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation after a hidden conv of D: ``batch`` (DCGAN), ``layer`` (per sample over
    C, H, W with a per-channel scale and shift: GroupNorm with one group), or none at all (``none``,
    and ``spectral``, which normalises the conv weights instead)."""
    assert kind in D_NORMS, f"norm must be one of {D_NORMS}, got {kind!r}"
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(1, channels) if kind == "layer" else nn.Identity()


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int, image_size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        steps = num_doublings(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width  # no normalisation on the input layer
        for _ in range(steps - 1):  # a conv followed by a shift (BatchNorm, layer norm) needs no bias
            bias = norm in ("none", "spectral")
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=bias), hidden_norm(norm, ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0)]  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)
        self.image_size = image_size
        self.apply(init_dcgan_weights)
        if norm == "spectral":  # after the init: the parametrisation keeps the drawn weight as `original`
            for layer in self.net:
                if isinstance(layer, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == self.image_size, f"D expects {self.image_size}px images, got {list(x.shape)}"
        return self.net(x).flatten(1).squeeze(1)  # [N] logits
