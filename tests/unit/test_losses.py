import math

import pytest
import torch

from pipeline.losses import discriminator_bce, generator_minimax, generator_nonsaturating


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
