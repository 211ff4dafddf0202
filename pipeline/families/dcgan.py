"""DCGAN family: the convolutional G and D of Radford et al. trained with the 2014 GAN losses.

One step is :func:`pipeline.families.adversarial.adversarial_step` (the 2014 GAN objective) with
T = DiffAugment (identity when ``augment`` is empty). An exponential moving average of G's
weights (``G_ema``; ``ema_decay: 0`` makes it a copy of G) draws the samples, with BatchNorm
statistics re-estimated from its own activations before sampling. ``pack: m`` > 1 makes D a PacGAN
discriminator over m images stacked along the channel axis.
"""

from __future__ import annotations

import torch

from pipeline.augment import diff_augment
from pipeline.config import DcganConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import LatentGANFamily
from pipeline.families.base import Nets, make_ema
from pipeline.models.dcgan import DCGANDiscriminator, DCGANGenerator
from pipeline.models.packing import PackedDiscriminator


class DCGANFamily(LatentGANFamily):
    """Constructed per variant: ``DCGANFamily(cfg)`` knows its loss, augmentation and EMA decay."""

    cfg: DcganConfig

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        G = DCGANGenerator(cfg.z_dim, spec.channels, spec.image_size, cfg.g_width)
        D = DCGANDiscriminator(spec.channels * cfg.pack, spec.image_size, cfg.d_width)
        if cfg.pack > 1:  # PacDCGAN: m images stacked along channels
            D = PackedDiscriminator(D, cfg.pack)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.augment)
