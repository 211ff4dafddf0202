"""The GAN training step shared by the families whose G maps z to a sample (gan, dcgan).

One step (Goodfellow et al. 2014, Algorithm 1 with k = 1), T an optional differentiable transform
applied to everything D sees (DiffAugment; identity when unused):
  D phase: minimise L_D = -E[log D(T(x))] - E[log(1 - D(T(G(z))))]
  G phase: minimise L_G = E[log(1 - D(T(G(z))))] (``minimax``) or -E[log D(T(G(z)))] (``nonsaturating``)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from pipeline.families.base import Optimizers, StepEnv, grad_norm
from pipeline.losses import GENERATOR_LOSSES, discriminator_bce


def adversarial_step(G: nn.Module, D: nn.Module, opts: Optimizers, real: torch.Tensor, z: torch.Tensor,
                     loss: str, env: StepEnv,
                     transform: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> dict[str, float]:
    """One D update then one G update; returns the namespaced step scalars."""
    # D phase: fakes are detached so only D's parameters get gradients.
    fake = G(z)
    real_logits = D(transform(real))
    fake_logits = D(transform(fake.detach()))
    loss_d = discriminator_bce(real_logits, fake_logits)
    opts["D"].zero_grad(set_to_none=True)
    loss_d.backward()
    env.sync_grads(D.parameters())
    opts["D"].step()

    # G phase: gradients flow through (the just-updated) D into G; only G steps.
    loss_g = GENERATOR_LOSSES[loss](D(transform(fake)))
    opts["G"].zero_grad(set_to_none=True)
    loss_g.backward()
    env.sync_grads(G.parameters())
    g_norm = grad_norm(G.parameters())
    opts["G"].step()
    return {
        "loss/D": float(loss_d.detach()), "loss/G": float(loss_g.detach()), "grad_norm/G": g_norm,
        "D/real": float(torch.sigmoid(real_logits.detach()).mean()),
        "D/fake": float(torch.sigmoid(fake_logits.detach()).mean()),
    }
