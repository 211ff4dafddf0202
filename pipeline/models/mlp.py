"""MLP generator and discriminator of the original GAN (Goodfellow et al. 2014).

G: z [N, z_dim] -> ``layers`` x (Linear, BatchNorm, ReLU) -> Linear to ``out_dim`` (tanh when the
outputs are images in [-1, 1], identity for 2-D points). D: ``layers`` x (Linear, LeakyReLU 0.2)
-> one logit. Flattened images work too: ``out_dim = C * H * W``. Sizes follow the PacGAN code
(G 4 x 400, D 3 x 200); D uses LeakyReLU instead of maxout.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_dim: int, hidden: int = 400, layers: int = 4, tanh: bool = False):
        super().__init__()
        self.z_dim = z_dim
        blocks: list[nn.Module] = []
        width = z_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True)]
            width = hidden
        blocks.append(nn.Linear(width, out_dim))
        if tanh:
            blocks.append(nn.Tanh())
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        assert z.dim() == 2 and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}], got {list(z.shape)}"
        return self.net(z)  # [N, out_dim]


class MLPDiscriminator(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 200, layers: int = 3):
        super().__init__()
        self.in_dim = in_dim
        blocks: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2, True)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # images [N, C, H, W] -> [N, C*H*W]; points stay [N, 2]
        assert x.shape[1] == self.in_dim, f"D expects {self.in_dim} inputs per sample, got {x.shape[1]}"
        return self.net(x).squeeze(1)  # [N] logits
