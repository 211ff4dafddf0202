"""Convolutional VAE of the same size as the DCGAN (the GAN vs VAE baseline).

Encoder: the DCGAN discriminator's conv stack (strided 4x4 convs, LeakyReLU 0.2, BatchNorm after
the first layer) down to 4x4, then one linear layer to the posterior mean and log-variance.
Decoder: exactly the DCGAN generator (z -> 4x4 -> doubling transposed convs -> tanh image), so the
two models differ in training objective, not in capacity.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.dcgan import DCGANGenerator, init_dcgan_weights, num_doublings


class ConvEncoder(nn.Module):
    """x [N, C, S, S] -> (mu [N, z_dim], logvar [N, z_dim]) of q(z | x)."""

    def __init__(self, channels: int, image_size: int, z_dim: int, width: int = 64):
        super().__init__()
        steps = num_doublings(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(steps - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())  # [N, ch * 4 * 4]
        self.posterior = nn.Linear(ch * 16, 2 * z_dim)
        self.z_dim = z_dim
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.posterior(self.features(x)).chunk(2, dim=1)
        return mu, logvar


def vae_networks(channels: int, image_size: int, z_dim: int, width: int) -> dict[str, nn.Module]:
    """``E`` (encoder) and ``Dec`` (decoder = a DCGAN generator)."""
    return {"E": ConvEncoder(channels, image_size, z_dim, width),
            "Dec": DCGANGenerator(z_dim, channels, image_size, width)}
