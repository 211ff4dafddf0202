"""The VAE baseline: ELBO terms against hand-computed values, shapes, a training step, held-out metrics."""

import math

import numpy as np
import pytest
import torch

from helpers import restore_latest, tiny_params
from pipeline.config import parse_params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.families.base import StepEnv
from pipeline.losses import gaussian_nll, kl_standard_normal, negative_elbo


def test_elbo_terms_by_hand():
    x, x_hat = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, -1.0]])
    # Two pixels, std 0.5: (0.25 / (2 * 0.25) + 0) + 2 * (log 0.5 + log(2 pi) / 2)
    expected_nll = 0.5 + 2 * (math.log(0.5) + 0.5 * math.log(2 * math.pi))
    assert gaussian_nll(x, x_hat, 0.5).item() == pytest.approx(expected_nll)
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # 1/2 * [(1 + 1 - 0 - 1) + (0 + 2 - log 2 - 1)]
    expected_kl = 0.5 * (1.0 + 1.0 - math.log(2.0))
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(expected_kl)
    loss, nll, kl = negative_elbo(x, x_hat, mu, logvar, 0.5)
    assert loss.item() == pytest.approx(expected_nll + expected_kl) and nll.item() == pytest.approx(expected_nll)


def vae_cfg():
    raw = tiny_params()
    raw["variants"]["vae"] = {"family": "vae", "dataset": "digits", "epochs": 1, "batch_size": 32, "z_dim": 8,
                              "width": 16}
    return parse_params(raw).variant("vae")


@pytest.mark.parametrize("size", [8, 16, 32])
def test_shapes_and_sampling(size):
    fam = family_for(vae_cfg())
    nets = fam.build(DataSpec(channels=1, image_size=size, num_classes=10))
    mu, logvar = nets["E"](torch.zeros(3, 1, size, size))
    assert mu.shape == logvar.shape == (3, 8)
    assert fam.sample(nets, 5, torch.Generator().manual_seed(0)).shape == (5, 1, size, size)
    assert fam.input_example(2).shape == (2, 8) and fam.num_classes() == 0


def test_training_lowers_the_negative_elbo_and_reports_held_out_metrics():
    torch.manual_seed(0)
    fam = family_for(vae_cfg())
    nets = fam.build(DataSpec(channels=1, image_size=16, num_classes=10))
    opts = fam.optimizers(nets)
    x = torch.rand(32, 1, 16, 16) * 2 - 1
    env = StepEnv(0, torch.device("cpu"), lambda params: None)
    first = fam.train_step(nets, opts, (x, torch.zeros(32, dtype=torch.long)), env)
    for _ in range(30):
        last = fam.train_step(nets, opts, (x, torch.zeros(32, dtype=torch.long)), env)
    assert last["loss/neg_elbo"] < first["loss/neg_elbo"] and all(np.isfinite(v) for v in last.values())
    held_out = fam.held_out_metrics(nets, x, seed=0)
    assert set(held_out) == {"elbo", "kl", "recon_mse"} and held_out["kl"] >= 0 and held_out["recon_mse"] > 0


def test_the_per_epoch_preview_leaves_the_trained_nets_in_train_mode(prepared_digits):
    """The MLflow sample grid samples through the decoder, which switches it to eval mode; training
    must go on with BatchNorm in train mode (regression: the VAE trained in eval mode after epoch 1)."""
    from pipeline.data import load_prepared
    from pipeline.train.loop import _epoch_picture

    fam = family_for(vae_cfg())
    nets = fam.build(DataSpec(channels=1, image_size=16, num_classes=10))
    picture, samples = _epoch_picture(fam, nets, load_prepared(prepared_digits), seed=0, n_images=16)
    assert picture.ndim == 3 and samples.shape == (16, 1, 16, 16) and nets["Dec"].training and nets["E"].training


def test_one_epoch_of_the_loop_then_save_and_evaluate_as_the_stages_do(prepared_digits, evaluator_dir, tmp_path):
    """The training loop (in-process) for one epoch, the final checkpoint restored and the decoder
    and encoder saved as train@ does, then evaluate_run as evaluate@ does: FID against the floor
    plus the held-out ELBO terms (the VAE column of the GAN vs VAE comparison)."""
    from pipeline.data import load_prepared
    from pipeline.evaluation import evaluate_run
    from pipeline.sampling import save_generator
    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    data = load_prepared(prepared_digits)
    cfg = vae_cfg()
    session = LocalSession(tmp_path / "ckpt")
    train_loop(TrainJob("vae", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict(), session)
    assert session.reports[-1]["step"] == 1437 // 32 and np.isfinite(session.reports[-1]["loss/neg_elbo"])

    fam = family_for(cfg)
    nets = fam.build(data.spec)
    restore_latest(fam, nets, session)
    save_generator(tmp_path / "vae", fam, nets, data.spec)
    _, _, metrics = evaluate_run(tmp_path / "vae", str(evaluator_dir), data, parse_params(tiny_params()).evaluators["digits"])
    assert metrics["n_samples"] == 360 and metrics["fid"] > metrics["fid_floor"] > 0
    assert np.isfinite(metrics["elbo"]) and metrics["kl"] >= 0 and metrics["recon_mse"] > 0
