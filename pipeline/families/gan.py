"""The original GAN family (Goodfellow et al. 2014): MLP G and D with the minimax or non-saturating
generator loss (:func:`pipeline.families.adversarial.adversarial_step`, no augmentation).

On 2-D points G outputs points directly; on images G outputs C*H*W values through tanh, reshaped
to [N, C, H, W], and D flattens its input. ``G_ema`` is an EMA of G (a copy when ``ema_decay`` is
0) whose BatchNorm statistics are re-estimated before sampling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.config import GanConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import adversarial_step
from pipeline.families.base import Nets, Optimizers, StepEnv, make_ema, recalibrate_batchnorm, update_ema
from pipeline.models.mlp import MLPDiscriminator, MLPGenerator


class Reshape(nn.Module):
    """[N, C*H*W] -> [N, C, H, W] (identity for points, ``shape`` = ())."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape) if self.shape else x


class GANFamily:
    sampling_net_name = "G_ema"

    def __init__(self, cfg: GanConfig):
        self.cfg = cfg

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        if spec.point_dim:
            out_dim, shape, tanh = spec.point_dim, (), False
        else:
            shape = (spec.channels, spec.image_size, spec.image_size)
            out_dim, tanh = int(np.prod(shape)), True
        mlp = MLPGenerator(cfg.z_dim, out_dim, cfg.g_hidden, cfg.g_layers, tanh=tanh)
        G = nn.Sequential(mlp, Reshape(shape))
        G.z_dim = cfg.z_dim
        D = MLPDiscriminator(out_dim, cfg.d_hidden, cfg.d_layers)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def optimizers(self, nets: Nets) -> Optimizers:
        cfg = self.cfg
        betas = (cfg.beta1, cfg.beta2)
        return {"G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr_g, betas=betas),
                "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr_d, betas=betas)}

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        real = batch[0]  # [N, 2] points or [N, C, H, W] images
        z = torch.randn(real.shape[0], self.cfg.z_dim, device=env.device)
        scalars = adversarial_step(nets["G"], nets["D"], opts, real, z, self.cfg.loss, env)
        update_ema(nets["G_ema"], nets["G"], self.cfg.ema_decay, env.step)
        return scalars

    def input_example(self, n: int) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((n, self.cfg.z_dim)).astype(np.float32)

    @torch.no_grad()
    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        assert cond is None, "this GAN is unconditional"
        G = nets[self.sampling_net_name]
        device = next(G.parameters()).device
        recalibrate_batchnorm(G, lambda g: torch.randn(256, self.cfg.z_dim, generator=g).to(device))
        return G(torch.randn(n, self.cfg.z_dim, generator=generator).to(device))
