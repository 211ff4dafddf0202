"""PacGAN packing (Lin et al. 2018): the discriminator judges m samples at once.

``pack`` concatenates each run of m consecutive samples along the feature axis (channels for
images, coordinates for points), so a batch of N samples becomes N/m packed samples:
[N, C, H, W] -> [N/m, m*C, H, W] and [N, d] -> [N/m, m*d]. A D that sees m samples together can
tell a collapsed generator (m near-identical samples) from real data (m independent ones), which
penalises mode collapse. Packs never mix real and generated samples.
"""

from __future__ import annotations

import torch
from torch import nn


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """[N, F, ...] -> [N/m, m*F, ...]; packed row i is samples i*m .. i*m+m-1 side by side."""
    n = x.shape[0]
    assert n % m == 0, f"a batch of {n} samples cannot be packed in groups of {m}: make it a multiple of pack"
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


class PackedDiscriminator(nn.Module):
    """Wraps a discriminator built for m times the input features; returns one logit per pack."""

    def __init__(self, inner: nn.Module, m: int):
        super().__init__()
        self.inner, self.m = inner, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(pack(x, self.m))  # [N/m] logits
