"""The GAN training step shared by the families whose G maps z to a sample (gan, dcgan).

One step (Goodfellow et al. 2014, Algorithm 1 with k = 1), T an optional differentiable transform
applied to everything D sees (DiffAugment; identity when unused):
  D phase: minimise L_D = -E[log D(T(x))] - E[log(1 - D(T(G(z))))]
  G phase: minimise L_G = E[log(1 - D(T(G(z))))] (``minimax``) or -E[log D(T(G(z)))] (``nonsaturating``)
With ``loss: hinge`` (dcgan) D's raw scores s: L_D = E[relu(1 - s(T(x)))] + E[relu(1 + s(T(G(z))))],
L_G = -E[s(T(G(z)))]; with ``loss: wgan``: L_D = E[s(T(G(z)))] - E[s(T(x))], L_G = -E[s(T(G(z)))]
(no clipping or penalty keeps D Lipschitz: for experiments only; ``pipeline.losses``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from pipeline.families.base import (Family, Nets, Optimizers, StepEnv, grad_norm, recalibrate_batchnorm,
                                    update_ema)
from pipeline.losses import ADVERSARIAL_LOSSES, GENERATOR_LOSSES


def adversarial_step(G: nn.Module, D: nn.Module, opts: Optimizers, real: torch.Tensor, z: torch.Tensor,
                     loss: str, env: StepEnv,
                     transform: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
                     compare_losses: bool = False, labels: torch.Tensor | None = None) -> dict[str, float]:
    """One D update then one G update; returns the namespaced step scalars.

    With ``compare_losses`` it also reports ``grad_norm/G_<loss>`` for *every* generator loss,
    computed on the same fakes and the same (just-updated) D as the step itself: the controlled
    minimax vs non-saturating comparison (Arjovsky & Bottou 2017). Diagnostic only; G steps on ``loss``.
    Conditional GAN: ``z`` already carries the one-hot labels and D is called as D(x, labels); real
    and generated samples of a step share the batch's labels. T transforms x, never the label.
    ``D/real`` and ``D/fake`` are the mean sigmoid(D) for the logit losses, the mean raw score for
    ``hinge`` and ``wgan``.
    """
    objective = ADVERSARIAL_LOSSES[loss]
    summary = torch.sigmoid if objective.logits else (lambda s: s)

    def discriminate(x: torch.Tensor) -> torch.Tensor:
        return D(transform(x)) if labels is None else D(transform(x), labels)

    # D phase: fakes are detached so only D's parameters get gradients.
    with env.autocast():
        fake = G(z)
        real_logits = discriminate(real)
        fake_logits = discriminate(fake.detach())
        loss_d = objective.discriminator(real_logits, fake_logits)
    opts["D"].zero_grad(set_to_none=True)
    loss_d.backward()
    env.sync_grads(D.parameters())
    opts["D"].step()

    # G phase: gradients flow through (the just-updated) D into G; only G steps.
    with env.autocast():
        gen_logits = discriminate(fake)
        loss_g = objective.generator(gen_logits)
    compared = _generator_grad_norms(G, gen_logits) if compare_losses else {}
    opts["G"].zero_grad(set_to_none=True)
    loss_g.backward()
    env.sync_grads(G.parameters())
    g_norm = grad_norm(G.parameters())
    opts["G"].step()
    return {
        "loss/D": float(loss_d.detach()), "loss/G": float(loss_g.detach()), "grad_norm/G": g_norm,
        "D/real": float(summary(real_logits.detach()).mean()),
        "D/fake": float(summary(fake_logits.detach()).mean()),
        **compared,
    }


def _generator_grad_norms(G: nn.Module, gen_logits: torch.Tensor) -> dict[str, float]:
    """||dL_G/dtheta_G|| of each generator loss at the same logits (local to this worker)."""
    params = [p for p in G.parameters() if p.requires_grad]
    norms = {}
    for name, loss_fn in GENERATOR_LOSSES.items():
        grads = torch.autograd.grad(loss_fn(gen_logits), params, retain_graph=True)
        norms[f"grad_norm/G_{name}"] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
    return norms


class LatentGANFamily(Family):
    """What the gan and dcgan families share: Adam for G and D, the adversarial step, an EMA
    generator (``G_ema``, BatchNorm statistics re-estimated before sampling) and latent sampling.

    Subclasses implement ``build(spec)`` (``G`` with a ``z_dim`` attribute, ``D``, ``G_ema``) and may
    override ``transform`` (what D sees; DiffAugment for DCGAN). ``cfg`` needs ``z_dim``, ``loss``,
    ``lr_g``, ``lr_d``, ``beta1``, ``beta2`` and ``ema_decay``.
    """

    def __init__(self, cfg):
        super().__init__(cfg)
        self._num_classes = 0  # set by build() from the data (conditional variants)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def compare_losses(self) -> bool:
        """Whether steps also report G's gradient norm under every generator loss."""
        return False

    def optimizers(self, nets: Nets) -> Optimizers:
        cfg = self.cfg
        betas = (cfg.beta1, cfg.beta2)
        return {"G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr_g, betas=betas),
                "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr_d, betas=betas)}

    def num_classes(self) -> int:
        """Classes G and D are conditioned on (0: unconditional)."""
        return self._num_classes if self.cfg.conditional else 0

    def latent(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """G's input: z, with the one-hot labels appended for a conditional GAN. [N, z_dim (+ K)]"""
        if not self.num_classes():
            return z
        return torch.cat([z, torch.nn.functional.one_hot(labels, self.num_classes()).to(z.dtype)], dim=1)

    def balanced_labels(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Labels 0, 1, ..., K-1, 0, 1, ...: equal classes, like the stratified test split."""
        return torch.arange(n, device=device) % self.num_classes()

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        real, labels = batch  # [N, C, H, W] images in [-1, 1] or [N, 2] points; [N] class labels
        labels = labels if self.num_classes() else None
        z = self.latent(torch.randn(real.shape[0], self.cfg.z_dim, device=env.device), labels)
        scalars = adversarial_step(nets["G"], nets["D"], opts, real, z, self.cfg.loss, env, self.transform,
                                   compare_losses=self.compare_losses(), labels=labels)
        update_ema(nets["G_ema"], nets["G"], self.cfg.ema_decay, env.step)
        return scalars

    def input_example(self, n: int) -> np.ndarray:
        z = torch.from_numpy(np.random.default_rng(0).standard_normal((n, self.cfg.z_dim)).astype(np.float32))
        return self.latent(z, self.balanced_labels(n) if self.num_classes() else None).numpy()

    @torch.no_grad()
    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` samples; a conditional GAN draws class ``cond[i]`` for sample i (default: balanced)."""
        assert cond is None or self.num_classes(), f"variant of family {self.cfg.family!r} is unconditional"
        G = nets[self.sampling_net_name]
        device = next(G.parameters()).device
        if self.num_classes() and cond is None:
            cond = self.balanced_labels(n)

        def latent(count: int, g: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
            return self.latent(torch.randn(count, self.cfg.z_dim, generator=g), labels).to(device)

        recalibrate_batchnorm(G, lambda g: latent(256, g, self.balanced_labels(256) if self.num_classes() else None))
        return G(latent(n, generator, None if cond is None else cond.cpu()))
