"""Losses as pure functions of tensors (they import only torch).

GAN losses take discriminator logits. Notation: D(x) = sigmoid(logit). Each returns a scalar mean
over the batch and is written with ``softplus`` so that it stays finite when D is confident:
log(sigmoid(l)) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l). The hinge and Wasserstein
losses take D's raw scores (no sigmoid). The VAE's ELBO terms are at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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


# The 2014 GAN's generator losses (config key ``loss`` of the gan family; the gan family's
# ``compare_losses`` logs G's gradient norm under each of them).
GENERATOR_LOSSES = {
    "minimax": generator_minimax,
    "nonsaturating": generator_nonsaturating,
}


def discriminator_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018), minimised by D on raw scores:

    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))].
    """
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def critic_wasserstein(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss (Arjovsky et al. 2017), minimised by the critic D on raw scores:

    L_D = E[D(G(z))] - E[D(x)], the negated Kantorovich-Rubinstein estimate of W(P_r, P_g). It is a
    distance only for a 1-Lipschitz D: on its own (no weight clipping, no gradient penalty) D's
    scores can grow without bound, so the plain ``wgan`` loss is for experiments only.
    """
    return fake_scores.mean() - real_scores.mean()


def generator_wasserstein(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss of the Wasserstein GAN and of the hinge GAN, minimised by G on raw scores:

    L_G = -E[D(G(z))].
    """
    return -fake_scores.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's gradient penalty (Gulrajani et al. 2017), before its weight lambda:

    GP = E[(||grad_xhat D(xhat)||_2 - 1)^2],  xhat = eps * x + (1 - eps) * G(z),

    with one eps ~ U[0, 1] per sample (``eps`` [N], drawn by the caller) and the norm over all of a
    sample's values. The gradient is taken with ``create_graph`` so that GP's own gradient reaches
    the critic's parameters. ``real`` and ``fake`` [N, ...] are treated as constants.
    """
    eps = eps.view(-1, *([1] * (real.dim() - 1)))  # [N, 1, 1, 1] for images
    xhat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xhat).sum(), xhat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


@dataclass(frozen=True)
class AdversarialLoss:
    """A D loss and a G loss that belong together; ``logits``: D's output is the logit of a
    probability (the step then reports sigmoid(D) as D(x)), else a raw score."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    logits: bool


# Explicit registry of the dcgan family's ``loss`` (the D phase and the G phase of one step).
ADVERSARIAL_LOSSES = {
    "minimax": AdversarialLoss(discriminator_bce, generator_minimax, logits=True),
    "nonsaturating": AdversarialLoss(discriminator_bce, generator_nonsaturating, logits=True),
    "hinge": AdversarialLoss(discriminator_hinge, generator_wasserstein, logits=False),
    "wgan": AdversarialLoss(critic_wasserstein, generator_wasserstein, logits=False),  # experiments only
}


def gaussian_nll(x: torch.Tensor, x_hat: torch.Tensor, std: float) -> torch.Tensor:
    """-log p(x | z) per sample for a Gaussian decoder N(x_hat, std^2 I), in nats:

    sum over pixels of (x - x_hat)^2 / (2 std^2) + log std + log(2 pi) / 2.   Returns [N].
    """
    per_pixel = (x - x_hat).pow(2) / (2 * std ** 2) + math.log(std) + 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, in nats:

    1/2 * sum_j (mu_j^2 + exp(logvar_j) - logvar_j - 1).   Returns [N].
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)


def negative_elbo(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  std: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)) with one reparameterised z ~ q (Kingma & Welling 2014).

    Returns the batch means of (-ELBO, reconstruction NLL, KL), in nats per sample.
    """
    nll, kl = gaussian_nll(x, x_hat, std), kl_standard_normal(mu, logvar)
    return (nll + kl).mean(), nll.mean(), kl.mean()


def lsgan_discriminator(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN discriminator loss (Mao et al. 2017) as CycleGAN uses it, minimised by D:

    L_D = 1/2 * (E[(D(y) - 1)^2] + E[D(G(x))^2]), over every patch score.
    """
    return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())


def lsgan_generator(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN generator loss, minimised by G: L_G = E[(D(G(x)) - 1)^2]."""
    return (fake_scores - 1).pow(2).mean()


def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference E|a - b| over every pixel: CycleGAN's cycle-consistency term
    ||F(G(x)) - x||_1 (and the identity term ||G(y) - y||_1), before their weights."""
    return (a - b).abs().mean()
