"""GAN losses as pure functions of discriminator logits (they import only torch).

Notation: D(x) = sigmoid(logit). Each function returns a scalar mean over the batch and is written
with ``softplus`` so that it stays finite when D is confident: log(sigmoid(l)) = -softplus(-l) and
log(1 - sigmoid(l)) = -softplus(l).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Standard GAN discriminator loss (Goodfellow et al. 2014), minimised by D:

    L_D = -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)].
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """Saturating (minimax) generator loss, minimised by G:

    L_G = E[log(1 - D(G(z)))] = -E[softplus(l_fake)].
    Its gradient vanishes when D confidently rejects fakes (D(G(z)) -> 0).
    """
    return -F.softplus(fake_logits).mean()


def generator_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss, minimised by G:

    L_G = -E[log D(G(z))] = E[softplus(-l_fake)]. Same fixed point, strong gradients early on.
    """
    return F.softplus(-fake_logits).mean()


# Explicit registry used by the families (config key ``loss``).
GENERATOR_LOSSES = {
    "minimax": generator_minimax,
    "nonsaturating": generator_nonsaturating,
}
