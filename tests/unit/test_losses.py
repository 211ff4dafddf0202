import math

import pytest
import torch

from pipeline.losses import (ADVERSARIAL_LOSSES, GENERATOR_LOSSES, critic_wasserstein, discriminator_bce,
                             discriminator_hinge, generator_minimax, generator_nonsaturating,
                             generator_wasserstein, gradient_penalty)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_discriminator_loss_at_chance_is_2_log_2():
    zeros = torch.zeros(4)
    assert discriminator_bce(zeros, zeros).item() == pytest.approx(2 * math.log(2))


@pytest.mark.parametrize("logit", [-3.0, 0.0, 2.0])
def test_generator_losses_match_hand_computed_values(logit):
    fake = torch.tensor([logit])
    d = sigmoid(logit)
    assert generator_minimax(fake).item() == pytest.approx(math.log(1 - d), rel=1e-5)
    assert generator_nonsaturating(fake).item() == pytest.approx(-math.log(d), rel=1e-5)


def test_discriminator_loss_matches_hand_computed_value():
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])
    expected = -(math.log(sigmoid(1)) + math.log(sigmoid(2))) / 2 - (
        math.log(1 - sigmoid(-1)) + math.log(1 - sigmoid(0.5))) / 2
    assert discriminator_bce(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_gradient_vanishes_when_d_rejects_fakes_but_nonsaturating_does_not():
    # D confidently rejects the fakes: logit -8, D(G(z)) ~ 3e-4.
    grads = {}
    for name, loss_fn in [("minimax", generator_minimax), ("ns", generator_nonsaturating)]:
        logits = torch.full((8,), -8.0, requires_grad=True)
        loss_fn(logits).backward()
        grads[name] = logits.grad.abs().mean().item()
    assert grads["minimax"] < 1e-3 * grads["ns"]


def test_losses_stay_finite_for_extreme_logits():
    extreme = torch.tensor([-1e4, 1e4])
    for value in (discriminator_bce(extreme, extreme), generator_minimax(extreme),
                  generator_nonsaturating(extreme)):
        assert torch.isfinite(value)


def test_hinge_discriminator_loss_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 0.5])
    # E[relu(1 - s_real)] = (0 + 0.5 + 2) / 3, E[relu(1 + s_fake)] = (0 + 1 + 1.5) / 3
    assert discriminator_hinge(real, fake).item() == pytest.approx(2.5 / 3 + 2.5 / 3)


def test_wasserstein_critic_and_generator_losses_by_hand():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])
    assert critic_wasserstein(real, fake).item() == pytest.approx(-0.25 - 2.0)  # E[D(G(z))] - E[D(x)]
    assert generator_wasserstein(fake).item() == pytest.approx(0.25)  # -E[D(G(z))]


def linear_critic(weight: torch.Tensor):
    """D(x) = <w, x> + 1 over the flattened sample: its gradient is w everywhere."""
    return lambda x: x.flatten(1) @ weight + 1.0


def test_gradient_penalty_is_zero_for_a_critic_with_unit_norm_gradient():
    torch.manual_seed(0)
    weight = torch.randn(12)
    real, fake, eps = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2), torch.rand(5)
    assert gradient_penalty(linear_critic(weight / weight.norm()), real, fake, eps).item() == pytest.approx(0.0, abs=1e-10)
    # ||grad|| = 3 everywhere: (3 - 1)^2 = 4
    assert gradient_penalty(linear_critic(3 * weight / weight.norm()), real, fake, eps).item() == pytest.approx(4.0)


def test_gradient_penalty_by_hand_for_a_quadratic_critic_and_it_reaches_the_critic_parameters():
    scale = torch.tensor(2.0, requires_grad=True)
    critic = lambda x: scale * x.pow(2).sum(1)  # noqa: E731  grad = 2 scale xhat, norm 2 scale |xhat|
    real, fake = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    eps = torch.tensor([0.5, 0.25])  # xhat = [0.5, 0], [0, 0.5]: gradient norms 2 and 2
    gp = gradient_penalty(critic, real, fake, eps)
    assert gp.item() == pytest.approx(1.0)  # ((2 - 1)^2 + (2 - 1)^2) / 2
    gp.backward()  # d/dscale of mean (2 scale |xhat| - 1)^2 = mean 2 (2 scale |xhat| - 1) 2 |xhat| = 2
    assert scale.grad.item() == pytest.approx(2.0)


def test_every_dcgan_loss_has_a_d_and_a_g_part():
    assert set(ADVERSARIAL_LOSSES) == {"minimax", "nonsaturating", "hinge", "wgan"}
    scores = torch.tensor([0.3, -0.7])
    for name, pair in ADVERSARIAL_LOSSES.items():
        assert torch.isfinite(pair.discriminator(scores, -scores)) and torch.isfinite(pair.generator(scores)), name
    assert set(GENERATOR_LOSSES) == {"minimax", "nonsaturating"}, "the gan family compares exactly these two"
