"""WGAN-GP (Gulrajani et al. 2017): the Wasserstein GAN with a gradient penalty instead of clipping.

The critic D is the DCGAN discriminator with layer norm (or none) instead of BatchNorm, since the
penalty is taken per sample; G is the DCGAN generator. One step is one generator iteration of the
paper's Algorithm 1. Its real batch x is split into ``n_critic`` parts x_1 .. x_k (one per critic
update, so ``batch_size`` counts the real images of the whole iteration; the paper's m = 64 per critic
update is ``batch_size: 320`` with n_critic 5). For each part, with fresh z and eps ~ U[0, 1]:

  critic:    minimise  L_D = E[D(G(z))] - E[D(x_i)] + lambda * E[(||grad_xhat D(xhat)||_2 - 1)^2],
             xhat = eps * x_i + (1 - eps) * G(z)                      (lambda = ``gp_lambda``, 10)
  then G:    minimise  L_G = -E[D(G(z))]  on a fresh z batch of the step's size.

Adam (``beta1`` 0, ``beta2`` 0.9, lr 1e-4) for both, as in the paper. Step scalars: ``loss/D``
(L_D with the penalty), ``loss/GP`` (the penalty before lambda), ``loss/G``, ``D/real`` and ``D/fake``
(mean raw critic scores), ``D/wasserstein`` = E[D(x)] - E[D(G(z))] (the critic's estimate of the
Wasserstein-1 distance, up to the Lipschitz constant), each a mean over the critic updates. Samples
come from ``G_ema`` (a copy of G with ``ema_decay: 0``, the default), as in the dcgan family.
"""

from __future__ import annotations

import torch

from pipeline.schemas import WganGpConfig
from pipeline.data import DataSpec
from pipeline.families.adversarial import LatentGANFamily
from pipeline.families.base import Nets, Optimizers, StepEnv, grad_norm, make_ema, update_ema
from pipeline.losses import critic_wasserstein, generator_wasserstein, gradient_penalty
from pipeline.models.dcgan import DCGANDiscriminator, DCGANGenerator


class WGANGPFamily(LatentGANFamily):
    """Adam, the EMA generator and latent sampling come from :class:`LatentGANFamily`; the step is WGAN-GP's."""
    family_name = "wgan_gp"  # `family: wgan_gp` in params.yaml

    cfg: WganGpConfig
    gan_vs_vae_side = "GAN"

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        G = DCGANGenerator(cfg.z_dim, spec.channels, spec.image_size, cfg.g_width)
        D = DCGANDiscriminator(spec.channels, spec.image_size, cfg.d_width, norm=cfg.critic_norm)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def num_classes(self) -> int:
        return 0  # unconditional

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        cfg = self.cfg
        G, D = nets["G"], nets["D"]
        real = batch[0]  # [N, C, H, W] in [-1, 1]
        totals = dict.fromkeys(("loss/D", "loss/GP", "D/real", "D/fake"), 0.0)
        parts = torch.tensor_split(real, cfg.n_critic)  # one real minibatch per critic update
        for part in parts:
            z = torch.randn(part.shape[0], cfg.z_dim, device=env.device)
            eps = torch.rand(part.shape[0], device=env.device)
            with env.autocast():
                with torch.no_grad():
                    fake = G(z)  # [n, C, H, W]; only the critic learns in this phase
                real_scores, fake_scores = D(part), D(fake)
                penalty = gradient_penalty(D, part, fake, eps)
                loss_d = critic_wasserstein(real_scores, fake_scores) + cfg.gp_lambda * penalty
            opts["D"].zero_grad(set_to_none=True)
            loss_d.backward()
            env.sync_grads(D.parameters())
            opts["D"].step()
            for key, value in (("loss/D", loss_d), ("loss/GP", penalty), ("D/real", real_scores.mean()),
                               ("D/fake", fake_scores.mean())):
                totals[key] += float(value.detach()) / len(parts)

        # G phase: through the just-updated critic; only G steps.
        z = torch.randn(real.shape[0], cfg.z_dim, device=env.device)
        with env.autocast():
            loss_g = generator_wasserstein(D(G(z)))
        opts["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        env.sync_grads(G.parameters())
        g_norm = grad_norm(G.parameters())
        opts["G"].step()
        update_ema(nets["G_ema"], G, cfg.ema_decay, env.step)
        return {**totals, "loss/G": float(loss_g.detach()), "grad_norm/G": g_norm,
                "D/wasserstein": totals["D/real"] - totals["D/fake"]}
