"""DCGAN family: the convolutional G and D of Radford et al. trained with the 2014 GAN losses.

One step is :func:`pipeline.families.adversarial.adversarial_step` (the 2014 GAN objective) with
T = DiffAugment (identity when ``augment`` is empty). An exponential moving average of G's
weights (``G_ema``; ``ema_decay: 0`` makes it a copy of G) draws the samples, with BatchNorm
statistics re-estimated from its own activations before sampling.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment import diff_augment
from pipeline.config import DcganConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import adversarial_step
from pipeline.families.base import Nets, Optimizers, StepEnv, make_ema, recalibrate_batchnorm, update_ema
from pipeline.models.dcgan import DCGANDiscriminator, DCGANGenerator


class DCGANFamily:
    """Constructed per variant: ``DCGANFamily(cfg)`` knows its loss, augmentation and EMA decay."""

    sampling_net_name = "G_ema"

    def __init__(self, cfg: DcganConfig):
        self.cfg = cfg

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        G = DCGANGenerator(cfg.z_dim, spec.channels, spec.image_size, cfg.g_width)
        D = DCGANDiscriminator(spec.channels, spec.image_size, cfg.d_width)
        nets: Nets = {"G": G, "D": D}
        # Without EMA the "EMA" generator is G itself (decay 0 copies G every step).
        nets["G_ema"] = make_ema(G)
        return nets

    def optimizers(self, nets: Nets) -> Optimizers:
        cfg = self.cfg
        betas = (cfg.beta1, cfg.beta2)
        return {"G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr_g, betas=betas),
                "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr_d, betas=betas)}

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        cfg = self.cfg
        real = batch[0]  # [N, C, H, W] in [-1, 1]
        z = torch.randn(real.shape[0], cfg.z_dim, device=env.device)
        scalars = adversarial_step(nets["G"], nets["D"], opts, real, z, cfg.loss, env,
                                   transform=lambda x: diff_augment(x, cfg.augment))
        update_ema(nets["G_ema"], nets["G"], cfg.ema_decay, env.step)
        return scalars

    def input_example(self, n: int) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((n, self.cfg.z_dim)).astype(np.float32)

    @torch.no_grad()
    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        assert cond is None, "DCGAN is unconditional; set conditional: true for a cGAN"
        G = nets[self.sampling_net_name]
        device = next(G.parameters()).device
        recalibrate_batchnorm(G, lambda g: torch.randn(256, G.z_dim, generator=g).to(device))
        z = torch.randn(n, G.z_dim, generator=generator)
        return G(z.to(device))  # [n, C, H, W] in [-1, 1]
