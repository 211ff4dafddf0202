"""The original GAN family (Goodfellow et al. 2014): MLP G and D with the minimax or non-saturating
generator loss (:func:`pipeline.families.adversarial.adversarial_step`, no augmentation).

On 2-D points G outputs points directly; on images G outputs C*H*W values through tanh, reshaped
to [N, C, H, W], and D flattens its input. ``G_ema`` is an EMA of G (a copy when ``ema_decay`` is
0) whose BatchNorm statistics are re-estimated before sampling. ``pack: m`` > 1 makes D a PacGAN
discriminator over m samples concatenated. ``conditional: true``: the label enters G with z and D
with the flattened x (one-hot).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.config import GanConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import LatentGANFamily
from pipeline.families.base import Nets, make_ema
from pipeline.models.mlp import MLPDiscriminator, MLPGenerator
from pipeline.models.conditional import ConditionalDiscriminator, ConditionalGenerator
from pipeline.models.packing import PackedDiscriminator


class Reshape(nn.Module):
    """[N, C*H*W] -> [N, C, H, W] (identity for points, ``shape`` = ())."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape) if self.shape else x


class GANFamily(LatentGANFamily):
    family_name = "gan"  # `family: gan` in params.yaml
    cfg: GanConfig
    compares_generator_losses = True  # the report's minimax vs non-saturating gradient plot

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        if spec.point_dim:
            out_dim, shape, tanh = spec.point_dim, (), False
        else:
            shape = (spec.channels, spec.image_size, spec.image_size)
            out_dim, tanh = int(np.prod(shape)), True
        self._num_classes = k = spec.num_classes if cfg.conditional else 0
        G = nn.Sequential(MLPGenerator(cfg.z_dim + k, out_dim, cfg.g_hidden, cfg.g_layers, tanh=tanh), Reshape(shape))
        D = MLPDiscriminator(out_dim * cfg.pack + k, cfg.d_hidden, cfg.d_layers)
        if k:  # cGAN: one-hot y appended to z and to the flattened x
            G, D = ConditionalGenerator(G, cfg.z_dim, k), ConditionalDiscriminator(D, k, image_planes=False)
        if cfg.pack > 1:  # PacGAN: m samples concatenated into one input vector
            D = PackedDiscriminator(nn.Sequential(nn.Flatten(), D), cfg.pack)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def compare_losses(self) -> bool:
        return self.cfg.compare_losses
