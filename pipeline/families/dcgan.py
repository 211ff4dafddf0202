"""DCGAN family: the convolutional G and D of Radford et al. trained with the 2014 GAN losses.

One step is :func:`pipeline.families.adversarial.adversarial_step` (the 2014 GAN objective) with
T = DiffAugment (identity when ``augment`` is empty). An exponential moving average of G's
weights (``G_ema``; ``ema_decay: 0`` makes it a copy of G) draws the samples, with BatchNorm
statistics re-estimated from its own activations before sampling. ``pack: m`` > 1 makes D a PacGAN
discriminator over m images stacked along the channel axis. ``d_norm: spectral`` is the SN-GAN
discriminator (spectral norm on every conv, no BatchNorm). ``conditional: true`` makes it the
conditional GAN (Mirza & Osindero 2014): the label enters G with z and D with x (one-hot).
"""

from __future__ import annotations

import torch

from pipeline.augment import diff_augment
from pipeline.config import DcganConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import LatentGANFamily
from pipeline.families.base import Nets, make_ema
from pipeline.models.dcgan import DCGANDiscriminator, DCGANGenerator
from pipeline.models.conditional import ConditionalDiscriminator, ConditionalGenerator
from pipeline.models.packing import PackedDiscriminator


class DCGANFamily(LatentGANFamily):
    """Constructed per variant: ``DCGANFamily(cfg)`` knows its loss, augmentation and EMA decay."""
    family_name = "dcgan"  # `family: dcgan` in params.yaml

    cfg: DcganConfig
    gan_vs_vae_side = "GAN"  # the report's GAN vs VAE comparison takes the first unconditional DCGAN

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        self._num_classes = k = spec.num_classes if cfg.conditional else 0
        G = DCGANGenerator(cfg.z_dim + k, spec.channels, spec.image_size, cfg.g_width)
        D = DCGANDiscriminator(spec.channels * cfg.pack + k, spec.image_size, cfg.d_width, norm=cfg.d_norm)
        if k:  # cGAN: one-hot y appended to z, and as label planes to x
            G, D = ConditionalGenerator(G, cfg.z_dim, k), ConditionalDiscriminator(D, k, image_planes=True)
        if cfg.pack > 1:  # PacDCGAN: m images stacked along channels
            D = PackedDiscriminator(D, cfg.pack)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.augment)
