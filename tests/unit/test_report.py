"""The report renders from small real outputs: tables, GAN vs VAE in words, embedded pictures."""

import base64
import json

import numpy as np
import pytest

from helpers import tiny_points_params
from pipeline.config import parse_params
from pipeline.images import make_grid, save_png, to_uint8
from pipeline.report import build_sections, gan_vs_vae, write_report
from pipeline.artifacts import write_history


@pytest.mark.parametrize("kind", [
    {"kind": "digits"}, {"kind": "mnist", "image_size": 16},
    {"kind": "image_folder", "path": "data/raw/mine", "channels": 1, "image_size": 16}])
def test_report_from_small_outputs(tmp_path, kind):
    """Every section, whatever the image variants' dataset kind (the default is real MNIST)."""
    raw = tiny_points_params()
    raw["datasets"]["digits"] = kind
    raw["variants"]["vae"] = {"family": "vae", "dataset": "digits", "epochs": 2, "batch_size": 32}
    raw["variants"]["cgan"] = {**raw["variants"]["dcgan"], "conditional": True}
    raw["variants"]["stylegan"] = {"family": "stylegan", "dataset": "digits", "epochs": 2, "batch_size": 32}
    raw["datasets"]["d2t"] = {"kind": "digits_to_typed"}
    raw["evaluators"]["d2t"] = {}
    raw["variants"]["cyclegan"] = {"family": "cyclegan", "dataset": "d2t", "epochs": 1, "batch_size": 16}
    params = parse_params(raw)
    metrics, samples, plots = tmp_path / "metrics", tmp_path / "samples", tmp_path / "plots"
    for d in (metrics, samples, plots):
        d.mkdir()
    image = {"fid": 40.0, "fid_floor": 5.0, "fid_over_floor": 8.0, "kid_mean": 1.0, "kid_floor_mean": -0.1,
             "precision": 0.5, "precision_floor": 0.9, "recall": 0.9, "recall_floor": 0.9, "density": 0.3,
             "density_floor": 1.0, "coverage": 0.2, "coverage_floor": 0.7}
    (metrics / "dcgan.json").write_text(json.dumps(image))
    (metrics / "vae.json").write_text(json.dumps({**image, "fid": 90.0, "precision": 0.2, "recall": 0.95,
                                                  "elbo": -120.0, "kl": 20.0, "recon_mse": 0.05}))
    (metrics / "cgan.json").write_text(json.dumps({**image, "label_accuracy": 0.95, "intra_fid": 60.0,
                                                   "intra_fid_floor": 30.0, "cas": 0.9, "cas_real": 0.98}))
    (metrics / "stylegan.json").write_text(json.dumps({**image, "ppl_z": 310.0, "ppl_w": 150.0, "mix_follows_coarse": 0.83,
                                                       "mix_follows_fine": 0.1, "truncation/0.5/fid": 70.0}))
    (metrics / "cyclegan.json").write_text(json.dumps({
        "label_preservation_ab": 0.61, "label_preservation_ba": 0.72, "fid_ab": 30.0, "fid_ab_floor": 5.0,
        "fid_ab_over_floor": 6.0, "fid_ba": 40.0, "fid_ba_floor": 4.0, "fid_ba_over_floor": 10.0,
        "cycle_l1_a": 0.1, "cycle_l1_b": 0.2}))
    (metrics / "gan_ns.json").write_text(json.dumps({"modes": 7.5, "high_quality": 0.9, "reverse_kl": 0.1,
                                                     "std": {"modes": 0.5}, "seeds": [0, 1], "modes_floor": 8}))
    rng = np.random.default_rng(0)
    for name in ("dcgan", "vae", "cgan", "gan_ns"):
        save_png(make_grid(to_uint8(rng.uniform(-1, 1, (4, 1, 8, 8)))), samples / f"{name}.png")
    write_history(plots / "gan_ns.csv", [{"step": s, "loss/D": 1.0, "loss/G": 0.5, "grad_norm/G_minimax": 0.1,
                                          "grad_norm/G_nonsaturating": 2.0} for s in range(1, 300)])
    write_history(plots / "dcgan.csv", [{"step": s, "loss/D": 1.0, "loss/G": 0.7} for s in range(1, 50)])

    sections = build_sections(params, metrics, samples, plots, {"digits": {"test_accuracy": 0.98}})
    write_report(sections, tmp_path / "reports")

    page = (tmp_path / "reports" / "index.html").read_text()
    summary = (tmp_path / "reports" / "summary.md").read_text()
    for title in ("Image variants", "Conditional variants", "GAN vs VAE", "Mode collapse: ring8",
                  "Minimax vs non-saturating generator loss", "StyleGAN", "Translation (CycleGAN)", "Samples",
                  "Training curves"):
        assert title in page and f"## {title}" in summary, title
    assert "FID (lower is better): dcgan 40, vae 90 -&gt; dcgan is better." in page
    assert "recall (higher is better): dcgan 0.9, vae 0.95 -> vae is better." in summary
    assert "7.5 ± 0.5" in summary and "gan_ns (2 seeds)" in summary
    assert "| stylegan | 310 | 150 | 0.83 | 0.1 |" in summary
    assert "| cyclegan | 0.61 | 0.72 |" in summary
    embedded = page.count("data:image/png;base64,")
    assert embedded == 4 + 1 + 2  # samples, the gradient plot, two loss-curve plots
    first = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    assert len(list((tmp_path / "reports" / "figures").glob("*.png"))) == embedded


def test_tuning_section_compares_the_default_and_the_best_trial(tmp_path):
    from pipeline.report import tuning_section

    raw = tiny_points_params()
    raw["tune"] = {"dcgan": {"max_epochs": 3, "space": {"lr_g": "loguniform(1e-4, 1e-2)"}}}
    params = parse_params(raw)
    (tmp_path / "dcgan").mkdir()
    trial = {"objective": 120.0, "objective_std": 30.0, "epochs": 3}
    (tmp_path / "dcgan" / "best.json").write_text(json.dumps({
        "scheduler": "asha", "n_trials": 4, "objective": {"name": "kid", "mode": "min"},
        "best": {**trial, "config": {"lr_g": 0.00123}}, "default": {**trial, "objective": 150.0, "config": {"lr_g": 2e-4}},
        "trial_epochs": 7, "full_budget_epochs": 12}))
    section = tuning_section(params, tmp_path)
    header, row = section.table
    assert dict(zip(header, row)) == {
        "variant": "dcgan", "search": "asha, 4 trials", "objective": "kid (min)", "default config": "lr_g=0.0002",
        "default result": "150 +- 30 (3 ep)", "best config": "lr_g=0.00123", "best result": "120 +- 30 (3 ep)",
        "trial-epochs": "7 of 12", "applied to params": "no"}
    assert tuning_section(params, tmp_path / "missing") is None


def test_gan_vs_vae_says_whether_the_budgets_are_equal():
    gan, vae = {"fid": 40.0}, {"fid": 90.0}
    assert gan_vs_vae(gan, vae, "dcgan", "vae", (500, 500))[0].startswith(
        "Equal training budget: dcgan: 500 epochs, vae: 500 epochs.")
    unequal = gan_vs_vae(gan, vae, "dcgan", "vae", (500, 150))
    assert unequal[0].startswith("Unequal training budgets: dcgan: 500 epochs, vae: 150 epochs;")
    assert "FID (lower is better): dcgan 40, vae 90 -> dcgan is better." in unequal
    assert unequal[1].startswith("One seed each: no spread was measured")


def test_gan_vs_vae_names_a_winner_only_outside_the_spread_over_seeds():
    gan = {"fid": 40.0, "recall": 0.50, "std": {"fid": 2.0, "recall": 0.05}}
    vae = {"fid": 90.0, "recall": 0.55, "std": {"fid": 5.0, "recall": 0.04}}
    lines = gan_vs_vae(gan, vae, "dcgan", "vae", (500, 500))
    assert not any(line.startswith("One seed each") for line in lines)
    assert "FID (lower is better): dcgan 40 ± 2, vae 90 ± 5 -> dcgan is better." in lines
    assert ("recall (higher is better): dcgan 0.5 ± 0.05, vae 0.55 ± 0.04 -> no clear winner (the difference "
            "is within 2 spreads over seeds).") in lines
