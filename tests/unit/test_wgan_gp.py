"""WGAN-GP (and the dcgan family's hinge and wgan losses): the paper's defaults, a critic without
BatchNorm, n_critic critic updates per generator update, short trainings that move the samples
towards the data, and one epoch of the loop saved and evaluated as the stages do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import restore_latest, tiny_params
from pipeline.config import ConfigError, parse_params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.families.base import StepEnv


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks gain nothing from a second thread, and a busy machine makes two threads wait on
    each other (the double backward of the penalty most of all)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wgan_cfg(size: int = 16, **overrides):
    raw = tiny_params()
    raw["datasets"]["digits"]["image_size"] = size
    raw["variants"] = {"wgan_gp": {"family": "wgan_gp", "dataset": "digits", "epochs": 1, "batch_size": 32,
                                   "z_dim": 8, "g_width": 8, "d_width": 8, **overrides}}
    return parse_params(raw).variant("wgan_gp")


def env(step: int = 0) -> StepEnv:
    return StepEnv(step=step, device=torch.device("cpu"), sync_grads=lambda params: None)


def test_defaults_are_the_papers():
    cfg = wgan_cfg()
    assert (cfg.gp_lambda, cfg.n_critic, cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (10.0, 5, 1e-4, 1e-4, 0.0, 0.9)
    family = family_for(cfg)
    opts = family.optimizers(family.build(DataSpec(1, 16, 10)))
    assert all(isinstance(o, torch.optim.Adam) and o.param_groups[0]["betas"] == (0.0, 0.9) for o in opts.values())


def test_more_critic_updates_than_images_per_worker_is_refused():
    with pytest.raises(ConfigError, match=r"variants.wgan_gp.n_critic = 9: .* allowed: 1 .. 8"):
        wgan_cfg(batch_size=16, num_workers=2, n_critic=9)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_the_critic_has_no_batchnorm(norm):
    nets = family_for(wgan_cfg(critic_norm=norm)).build(DataSpec(3, 32, 10))
    kinds = {type(m) for m in nets["D"].modules()}
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds), f"critic has BatchNorm: {kinds}"
    assert (nn.GroupNorm in kinds) == (norm == "layer")
    x = torch.randn(4, 3, 32, 32)  # per-sample critic: a sample's score does not depend on the batch
    assert torch.allclose(nets["D"](x)[:1], nets["D"](x[:1]), atol=1e-5)


def test_one_step_is_n_critic_critic_updates_then_one_generator_update():
    torch.manual_seed(0)
    family = family_for(wgan_cfg(n_critic=4))
    nets = family.build(DataSpec(1, 16, 10))
    opts = family.optimizers(nets)
    scalars = family.train_step(nets, opts, (torch.rand(32, 1, 16, 16) * 2 - 1, torch.zeros(32)), env())
    steps = lambda opt: {int(s["step"]) for s in opt.state.values()}  # noqa: E731
    assert steps(opts["D"]) == {4} and steps(opts["G"]) == {1}
    assert {"loss/D", "loss/GP", "loss/G", "grad_norm/G", "D/real", "D/fake", "D/wasserstein"} == set(scalars)
    assert all(np.isfinite(v) for v in scalars.values()) and scalars["loss/GP"] >= 0
    assert scalars["D/wasserstein"] == pytest.approx(scalars["D/real"] - scalars["D/fake"])


PATTERN = torch.linspace(-0.8, 0.8, 64).view(1, 1, 8, 8)  # every real image: this ramp plus a little noise


def mean_image_error(family, nets) -> float:
    """|mean of 256 samples - the data's mean image|, averaged over pixels (the metric these trainings lower)."""
    samples = family.sample(nets, 256, torch.Generator().manual_seed(0))
    for net in nets.values():
        net.train()
    return float((samples.mean(0) - PATTERN[0]).abs().mean())


@pytest.mark.parametrize("family_name, overrides", [
    ("wgan_gp", {}), ("dcgan", {"loss": "hinge", "augment": []}), ("dcgan", {"loss": "wgan", "augment": []}),
    ("dcgan", {"loss": "hinge", "augment": [], "d_norm": "spectral", "beta1": 0.0, "beta2": 0.9})])
def test_a_short_training_moves_the_samples_towards_the_data(family_name, overrides):
    """50 steps on 8x8 images at a raised learning rate; the untrained generator is the baseline."""
    raw = tiny_params()
    raw["datasets"]["digits"]["image_size"] = 8
    raw["variants"] = {"v": {"family": family_name, "dataset": "digits", "epochs": 1, "batch_size": 32, "z_dim": 8,
                             "g_width": 8, "d_width": 8, "ema_decay": 0.0, "lr_g": 2e-3, "lr_d": 2e-3, **overrides}}
    family = family_for(parse_params(raw).variant("v"))
    torch.manual_seed(0)
    nets = family.build(DataSpec(1, 8, 10))
    spectral = [nn.utils.parametrize.is_parametrized(m) for m in nets["D"].modules() if isinstance(m, nn.Conv2d)]
    assert all(spectral) == (overrides.get("d_norm") == "spectral") and spectral  # d_norm reaches D
    opts = family.optimizers(nets)
    untrained = mean_image_error(family, nets)
    noise = torch.Generator().manual_seed(1)
    for step in range(50):
        x = (PATTERN + 0.05 * torch.randn(32, 1, 8, 8, generator=noise)).clamp(-1, 1)
        scalars = family.train_step(nets, opts, (x, torch.zeros(32, dtype=torch.long)), env(step))
        assert all(np.isfinite(v) for v in scalars.values()), f"step {step}: {scalars}"
    assert mean_image_error(family, nets) < 0.8 * untrained


def test_one_epoch_of_the_loop_then_save_and_evaluate_as_the_stages_do(prepared_digits, evaluator_dir, tmp_path):
    """Its metrics are the image metrics DCGAN's are (they go beside DCGAN's in the report)."""
    from pipeline.data import load_prepared
    from pipeline.evaluation import evaluate_run
    from pipeline.sampling import save_generator
    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    data = load_prepared(prepared_digits)
    cfg = wgan_cfg(batch_size=64)
    session = LocalSession(tmp_path / "ckpt")
    train_loop(TrainJob("wgan_gp", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict(), session)
    assert session.reports[-1]["step"] == 1437 // 64 and np.isfinite(session.reports[-1]["loss/D"])

    family = family_for(cfg)
    nets = family.build(data.spec)
    restore_latest(family, nets, session)
    save_generator(tmp_path / "wgan_gp", family, nets, data.spec)
    _, _, metrics = evaluate_run(tmp_path / "wgan_gp", str(evaluator_dir), data,
                                 parse_params(tiny_params()).evaluators["digits"])
    assert {"fid", "fid_floor", "fid_untrained", "kid_mean", "precision", "recall", "density", "coverage"} <= set(metrics)
    assert metrics["n_samples"] == 360 and metrics["fid"] > metrics["fid_floor"] > 0
