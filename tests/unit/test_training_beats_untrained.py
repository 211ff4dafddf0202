"""A short training beats the family's untrained networks, on the family's own measure.

Each test trains a family's ``train_step`` for 50-60 steps on 8x8 synthetic images (a fixed
pattern plus a little noise, so the target is known exactly) and compares the trained networks
with the same networks before training. Families covered elsewhere: ``gan`` (ring8 mode metrics,
tests/unit/test_gan_family.py), ``wgan_gp`` and DCGAN's hinge and wgan losses
(tests/unit/test_wgan_gp.py).

Margins, measured on torch seeds 0-3 while writing these: DCGAN's and StyleGAN's mean-image error fell
to 0.15-0.30x the untrained one's (asserted: < 0.7x), CycleGAN's cycle L1 to 0.14-0.15x (< 0.5x),
the VAE's held-out recon MSE to 0.06x (< 0.25x), and cgan's label accuracy rose from 0.46-0.52 to 1.0
(> 0.9).
"""

import numpy as np
import pytest
import torch

from helpers import tiny_params
from pipeline.config import parse_params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.families.base import StepEnv

SEED = 0
PATTERN = torch.linspace(-0.8, 0.8, 64).view(1, 1, 8, 8)  # class 0's (or domain A's) image; class 1's is -PATTERN


@pytest.fixture(autouse=True)
def one_thread():
    """Small nets: one thread is as fast, and leaves the other core alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def family_of(variant: dict):
    raw = tiny_params()
    raw["datasets"]["digits"]["image_size"] = 8
    raw["datasets"]["d2t"] = {"kind": "digits_to_typed", "image_size": 8}  # parsed only: cyclegan's config
    raw["evaluators"]["d2t"] = {}
    raw["variants"] = {"v": {"dataset": "d2t" if variant["family"] == "cyclegan" else "digits", **variant}}
    return family_for(parse_params(raw).variant("v"))


def env(step: int) -> StepEnv:
    return StepEnv(step=step, device=torch.device("cpu"), sync_grads=lambda params: None)


def images(pattern: torch.Tensor, n: int, noise: torch.Generator) -> torch.Tensor:
    return (pattern + 0.05 * torch.randn(n, 1, 8, 8, generator=noise)).clamp(-1, 1)


def train(family, nets, steps: int, batch_of) -> None:
    """``steps`` train steps on ``batch_of(noise)`` batches; every reported scalar stays finite."""
    opts = family.optimizers(nets)
    noise = torch.Generator().manual_seed(1)
    for step in range(steps):
        scalars = family.train_step(nets, opts, batch_of(noise), env(step))
        assert all(np.isfinite(v) for v in scalars.values()), f"step {step}: {scalars}"


def mean_image_error(family, nets) -> float:
    """|mean of 256 samples - the pattern|, averaged over pixels."""
    samples = family.sample(nets, 256, torch.Generator().manual_seed(0))
    for net in nets.values():
        net.train()
    return float((samples.mean(0) - PATTERN[0]).abs().mean())


def unlabelled(noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return images(PATTERN, 32, noise), torch.zeros(32, dtype=torch.long)


def test_dcgan_with_its_default_loss_moves_its_samples_towards_the_data():
    """DCGAN (nonsaturating loss, no augmentation): the samples' mean image nears the data's."""
    family = family_of({"family": "dcgan", "epochs": 1, "batch_size": 32, "z_dim": 8, "g_width": 8,
                        "d_width": 8, "augment": [], "ema_decay": 0.0, "lr_g": 2e-3, "lr_d": 2e-3})
    torch.manual_seed(SEED)
    nets = family.build(DataSpec(1, 8, 10))
    untrained = mean_image_error(family, nets)
    train(family, nets, 50, unlabelled)
    assert mean_image_error(family, nets) < 0.7 * untrained  # measured: 0.41 x untrained


def test_conditional_dcgan_draws_each_class_closer_to_its_own_images():
    """cgan: a sample of class c is 'correctly labelled' when nearer (L1) class c's image than the
    other class's; the trained generator's label accuracy beats the untrained one's (about chance)."""
    family = family_of({"family": "dcgan", "conditional": True, "epochs": 1, "batch_size": 32, "z_dim": 8,
                        "g_width": 8, "d_width": 8, "augment": [], "ema_decay": 0.0, "lr_g": 2e-3, "lr_d": 2e-3})
    targets = torch.cat([PATTERN, -PATTERN])  # [2, 1, 8, 8]

    def label_accuracy(nets) -> float:
        labels = torch.arange(256) % 2
        samples = family.sample(nets, 256, torch.Generator().manual_seed(0), cond=labels)
        for net in nets.values():
            net.train()
        distances = (samples[:, None] - targets[None]).abs().flatten(2).mean(2)  # [256, 2]
        return float((distances.argmin(1) == labels).float().mean())

    def labelled(noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(32) % 2
        return images(targets[labels], 32, noise), labels

    torch.manual_seed(SEED)
    nets = family.build(DataSpec(1, 8, 2))
    untrained = label_accuracy(nets)
    train(family, nets, 60, labelled)
    assert label_accuracy(nets) > max(0.9, untrained + 0.3)


def test_vae_reconstructs_held_out_images_better_and_raises_their_elbo():
    """VAE: on held-out images, the trained model's ELBO is higher and its recon MSE lower."""
    family = family_of({"family": "vae", "epochs": 1, "batch_size": 32, "z_dim": 8, "width": 8, "lr": 3e-3})
    held_out = images(PATTERN, 64, torch.Generator().manual_seed(99))
    torch.manual_seed(SEED)
    nets = family.build(DataSpec(1, 8, 10))
    untrained = family.held_out_metrics(nets, held_out, seed=0)
    for net in nets.values():
        net.train()
    train(family, nets, 50, unlabelled)
    trained = family.held_out_metrics(nets, held_out, seed=0)
    assert trained["recon_mse"] < 0.25 * untrained["recon_mse"]
    assert trained["elbo"] > untrained["elbo"]


def test_stylegan_grown_to_full_size_moves_its_samples_towards_the_data():
    """StyleGAN: 60 steps grow 4x4 -> 8x8 (full strength after 1,200 of the 1,920 images); the
    EMA generator's samples near the data's mean image. (lr 5e-3: with the equalised learning rate
    a step changes a weight by about lr relative to its unit scale; at 2e-3, 60 steps reach 0.83.)"""
    family = family_of({"family": "stylegan", "epochs": 1, "batch_size": 32, "z_dim": 8, "w_dim": 16,
                        "mapping_layers": 2, "g_width": 8, "d_width": 8, "phase_images": 400,
                        "fade_images": 800, "ema_decay": 0.9, "lr_g": 5e-3, "lr_d": 5e-3})
    torch.manual_seed(SEED)
    nets = family.build(DataSpec(1, 8, 10))
    family.set_growth(nets, 1, 1.0)  # the untrained generator at the size the trained one samples
    untrained = mean_image_error(family, nets)
    family.set_growth(nets, 0, 1.0)
    train(family, nets, 60, unlabelled)
    assert family.growth(60 * 32) == (1, 1.0)
    assert mean_image_error(family, nets) < 0.7 * untrained  # measured: 0.41 x untrained


def test_cyclegan_translates_there_and_back_closer_to_the_source():
    """CycleGAN between the pattern (A) and its negative (B): the held-out cycle L1
    |G_BA(G_AB(a)) - a| (the ``cycle_l1_a`` metric) falls well below the untrained one."""
    family = family_of({"family": "cyclegan", "epochs": 1, "batch_size": 8, "g_width": 8, "g_blocks": 1,
                        "d_width": 8, "pool_size": 5, "d_layers": 1, "lr": 2e-3})
    held_out = images(PATTERN, 32, torch.Generator().manual_seed(99)).numpy()

    def cycle_l1(nets) -> float:
        back = family.translate(nets, family.translate(nets, held_out, "AB"), "BA")
        for net in nets.values():
            net.train()
        return float(np.abs(back - held_out).mean())

    def two_domains(noise: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return images(PATTERN, 8, noise), images(-PATTERN, 8, noise)

    torch.manual_seed(SEED)
    nets = family.build(DataSpec(1, 8, 10))
    untrained = cycle_l1(nets)
    train(family, nets, 50, two_domains)
    assert cycle_l1(nets) < 0.5 * untrained
