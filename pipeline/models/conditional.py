"""Conditioning on a class label the way the conditional GAN does (Mirza & Osindero 2014).

The label y enters G together with z (one-hot, concatenated to z) and D together with x (one-hot,
broadcast to label planes for images, concatenated for vectors). The wrapped networks are built
for the wider inputs: G for ``z_dim + num_classes``, D for ``channels + num_classes`` (or
``features + num_classes``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalGenerator(nn.Module):
    """G(z, y) = inner([z, onehot(y)]).

    ``forward(z, y)``, or ``forward(zy)`` with the one-hot label already appended to z (the single
    input array the exported MLflow model takes: [N, z_dim + num_classes]).
    """

    def __init__(self, inner: nn.Module, z_dim: int, num_classes: int):
        super().__init__()
        self.inner, self.z_dim, self.num_classes = inner, z_dim, num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        assert z.shape[1] == self.z_dim + self.num_classes, (
            f"conditional G takes z [N, {self.z_dim}] with labels y [N], or [N, {self.z_dim + self.num_classes}]")
        return self.inner(z)


class ConditionalDiscriminator(nn.Module):
    """D(x, y) = inner([x, onehot(y)]): label planes beside the channels of images [N, C, H, W]
    (``image_planes``), or one vector with the flattened x."""

    def __init__(self, inner: nn.Module, num_classes: int, image_planes: bool):
        super().__init__()
        self.inner, self.num_classes, self.image_planes = inner, num_classes, image_planes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.num_classes).to(x.dtype)  # [N, K]
        if self.image_planes:  # conv D: K constant planes beside the C image channels
            onehot = onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # [N, K, H, W]
        else:  # MLP D: one vector
            x = x.flatten(1)
        return self.inner(torch.cat([x, onehot], dim=1))
