"""Real resolutions: every image family trains and samples at 32x32 and 64x64, grey and RGB, and the
evaluator, its metrics (FID/KID/PRDC features, StyleGAN's PPL) and CycleGAN's translations work there.

Small widths (8) and batches of 8 keep each case well under a second on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import tiny_params
from pipeline.config import EvaluatorConfig, TrainingConfig, parse_params
from pipeline.data import DataSpec, Prepared, to_unit_range
from pipeline.evaluate import image_metrics
from pipeline.evaluator import build_evaluator
from pipeline.families import family_for
from pipeline.models import stylegan as stylegan_models
from pipeline.families.base import StepEnv
from pipeline.metrics.features import Evaluator, load_evaluator
from pipeline.models.evaluator import EvaluatorCNN
from pipeline.models.stylegan import mixed_latents
from pipeline.style_eval import style_metrics

SIZES = [(channels, size) for size in (32, 64) for channels in (1, 3)]
BATCH = 8
VARIANTS: dict[str, dict] = {  # name -> a small variant of that family (cgan: dcgan with conditional)
    "dcgan": {"family": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8, "augment": ["translation", "cutout"]},
    "cgan": {"family": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8, "conditional": True},
    "vae": {"family": "vae", "z_dim": 8, "width": 8},
    "stylegan": {"family": "stylegan", "z_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_width": 8, "d_width": 8,
                 "phase_images": 16, "fade_images": 16, "augment": ["translation"], "mixing_prob": 0.9},
    "gan": {"family": "gan", "z_dim": 8, "g_hidden": 32, "g_layers": 2, "d_hidden": 32, "d_layers": 2},
    "wgan_gp": {"family": "wgan_gp", "z_dim": 8, "g_width": 8, "d_width": 8, "n_critic": 2},
}


def variant(name: str, size: int, **overrides) -> TrainingConfig:
    """The validated config of VARIANTS[name] on a ``size`` x ``size`` digits dataset."""
    raw = tiny_params()
    raw["datasets"]["digits"]["image_size"] = size
    raw["variants"] = {name: {"dataset": "digits", "epochs": 1, "batch_size": BATCH, **VARIANTS[name], **overrides}}
    return parse_params(raw).variant(name)


def real_batch(channels: int, size: int, n: int = BATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images mapped to [-1, 1] as training sees them [n, C, S, S], and labels [n]."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    return torch.from_numpy(to_unit_range(images)), torch.from_numpy(rng.integers(0, 10, n))


def env(step: int = 0) -> StepEnv:
    return StepEnv(step=step, device=torch.device("cpu"), sync_grads=lambda params: None)


def full_growth_step(family, batch_size: int = BATCH) -> int:
    """A step at which a StyleGAN has fully grown (0 for the other families)."""
    if not hasattr(family, "images_to_full_size"):
        return 0
    return family.images_to_full_size() // batch_size + 1


def check_forward_shapes(name: str, nets: dict, x: torch.Tensor, y: torch.Tensor, z_dim: int) -> None:
    """G (or the decoder) makes [N, C, S, S] images and D (or the encoder) takes them."""
    n, z = x.shape[0], torch.randn(x.shape[0], z_dim)
    if name == "vae":
        mu, logvar = nets["E"](x)
        assert mu.shape == logvar.shape == (n, z_dim), "the encoder must give [N, z_dim] posterior parameters"
        assert nets["Dec"](z).shape == x.shape, "the decoder must give images of the data's shape"
        return
    fake = nets["G"](z, y) if name == "cgan" else nets["G"](z)
    assert fake.shape == x.shape, f"G makes {list(fake.shape)}, the data is {list(x.shape)}"
    logits = nets["D"](fake, y) if name == "cgan" else nets["D"](fake)
    assert logits.shape == (n,), f"D must give one logit per image, got {list(logits.shape)}"


@pytest.mark.parametrize("channels,size", SIZES)
@pytest.mark.parametrize("name", ["dcgan", "cgan", "vae", "stylegan", "wgan_gp"])
def test_family_trains_and_samples_at_real_sizes(name, channels, size):
    torch.manual_seed(0)
    family = family_for(variant(name, size))
    nets = family.build(DataSpec(channels, size, 10))
    x, y = real_batch(channels, size)
    step = full_growth_step(family)
    scalars = family.train_step(nets, family.optimizers(nets), (x, y), env(step))
    assert scalars and all(np.isfinite(v) for v in scalars.values()), f"{name} at {size}px: {scalars}"
    if name == "stylegan":
        assert scalars["growth/phase"] == size.bit_length() - 3 and scalars["growth/alpha"] == 1.0, (
            f"StyleGAN must have grown to {size}x{size} after images_to_full_size(): {scalars}")
    check_forward_shapes(name, nets, x, y, family.cfg.z_dim)
    samples = family.sample(nets, 5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, channels, size, size), f"samples {list(samples.shape)}"
    assert torch.isfinite(samples).all() and samples.abs().max() <= 1.0, "samples must lie in [-1, 1]"


def test_gan_on_flattened_grey_32px_images():
    torch.manual_seed(0)
    family = family_for(variant("gan", 32))
    nets = family.build(DataSpec(1, 32, 10))
    assert nets["D"].in_dim == 32 * 32, "the MLP D must see the flattened C*S*S image"
    x, y = real_batch(1, 32)
    scalars = family.train_step(nets, family.optimizers(nets), (x, y), env())
    assert all(np.isfinite(v) for v in scalars.values()), scalars
    samples = family.sample(nets, 4, torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 32, 32) and samples.abs().max() <= 1.0


@pytest.mark.parametrize("size", [32, 64])
def test_stylegan_grows_fades_mixes_and_truncates_at_real_sizes(size):
    family = family_for(variant("stylegan", size, batch_size=4))
    torch.manual_seed(0)
    nets = family.build(DataSpec(3, size, 10))
    last = size.bit_length() - 3  # 32 -> phase 3, 64 -> phase 4
    full = family.images_to_full_size()
    assert family.growth(full) == (last, 1.0) and family.growth(10 ** 9) == (last, 1.0)
    phase, alpha = family.growth(full - 8)  # inside the last fade-in
    assert phase == last and 0 < alpha < 1, "the last resolution must fade in before the schedule ends"
    scalars = family.train_step(nets, family.optimizers(nets), real_batch(3, size, 4), env((full - 8) // 4))
    assert all(np.isfinite(v) for v in scalars.values()) and scalars["growth/phase"] == last
    G = nets["G"]
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    mixed = mixed_latents(z1, z2, torch.tensor([1, 3, 2 * last, G.num_layers]), G.num_layers)
    assert G(mixed).shape == (4, 3, size, size), "style mixing must give full-size images"
    assert family.sample(nets, 3, torch.Generator().manual_seed(0), psi=0.5).shape == (3, 3, size, size)


def perturbed_stylegan(size: int):
    """A fully grown StyleGAN whose styles matter (fresh AdaIN style layers are zero, so z would not)."""
    family = family_for(variant("stylegan", size))
    torch.manual_seed(0)
    nets = family.build(DataSpec(1, size, 10))
    with torch.no_grad():
        for p in nets["G_ema"].parameters():
            p.add_(0.1 * torch.randn_like(p))
    return family, nets


def test_stylegan_renders_in_chunks_with_the_images_of_one_pass(monkeypatch):
    family, nets = perturbed_stylegan(32)
    one_pass = family.sample(nets, 6, torch.Generator().manual_seed(1))
    monkeypatch.setattr(stylegan_models, "RENDER_PIXELS", 2 * 32 * 32)  # 2 images per pass
    chunked = family.sample(nets, 6, torch.Generator().manual_seed(1))
    assert torch.allclose(one_pass, chunked, atol=1e-5), "chunked rendering must not change the images"


def test_stylegan_sampling_at_16px_is_one_pass_as_before():
    """The committed 16x16 metrics: sample() equals G(z) with the noise seeded as it always was."""
    family, nets = perturbed_stylegan(16)
    G = nets["G_ema"].eval()
    generator = torch.Generator().manual_seed(2)
    z = torch.randn(1000, 8, generator=generator)
    noise_seed = int(torch.randint(2 ** 31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(noise_seed)
        expected = G(z)
    assert torch.equal(family.sample(nets, 1000, torch.Generator().manual_seed(2)), expected)


@pytest.mark.parametrize("channels,size", SIZES)
def test_evaluator_extracts_features_and_keeps_the_feature_layer_small(channels, size):
    model = EvaluatorCNN(channels, 10, feature_dim=16, image_size=size)
    x = torch.from_numpy(to_unit_range(np.zeros((3, channels, size, size), np.uint8)))
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, 16)
    assert model.backbone[9].in_features == 64 * 8 * 8, "the feature layer sees at most a 64 x 8 x 8 map"


def test_evaluator_at_16px_keeps_its_architecture():
    """The committed 16x16 evaluators: same layers, keys and shapes as before the real sizes."""
    model = EvaluatorCNN(1, 10, 64, 16)
    assert isinstance(model.backbone[8], torch.nn.Flatten) and model.backbone[9].in_features == 64 * 4 * 4
    assert EvaluatorCNN(1, 10, 64, 64).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("channels,size", [(1, 32), (3, 64)])
def test_evaluator_trains_and_stores_reference_features(tmp_path, channels, size):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, channels, size, size), dtype=np.uint8)
    labels = np.arange(60) % 3
    data = Prepared(images[:40], labels[:40], images[40:], labels[40:], "sha", DataSpec(channels, size, 3), {})
    meta = build_evaluator(EvaluatorConfig(epochs=1, batch_size=20, feature_dim=8), data, tmp_path / "ev")
    assert 0.0 <= meta["test_accuracy"] <= 1.0
    evaluator = load_evaluator(tmp_path / "ev")
    assert evaluator.train_features.shape == (40, 8) and evaluator.test_features.shape == (20, 8)
    assert evaluator.features(to_unit_range(images[:5])).shape == (5, 8)
    generated = np.random.default_rng(1).uniform(-1, 1, (20, channels, size, size)).astype(np.float32)
    metrics = image_metrics(evaluator, generated, variant("dcgan", size), 20)  # FID, KID, PRDC and floors
    assert all(np.isfinite(v) for k, v in metrics.items() if k != "fid_over_floor"), metrics


@pytest.mark.parametrize("size", [32, 64])
def test_style_metrics_at_real_sizes(size):
    """PPL in Z and W, style mixing's class following and the truncation sweep (FID, recall, diversity)."""
    family, nets = perturbed_stylegan(size)
    torch.manual_seed(0)
    model = EvaluatorCNN(1, 10, feature_dim=8, image_size=size).eval()
    features = np.random.default_rng(0).normal(size=(20, 8))
    evaluator = Evaluator(model, features, features.mean(0), np.cov(features.T), features, {})
    metrics = style_metrics(family, nets, evaluator, n=20, seed=0, ppl_pairs=16)
    assert np.isfinite(metrics["ppl_z"]) and np.isfinite(metrics["ppl_w"]) and metrics["ppl_w"] >= 0, metrics
    assert all(np.isfinite(metrics[f"truncation/{psi}/fid"]) for psi in (1.0, 0.9, 0.7, 0.5)), metrics


@pytest.mark.parametrize("channels,size", [(1, 32), (3, 64)])
def test_cyclegan_trains_and_translates_at_real_sizes(channels, size):
    raw = tiny_params()
    raw["datasets"]["pairs"] = {"kind": "image_folders", "path": "unused", "channels": channels, "image_size": size}
    raw["evaluators"]["pairs"] = {}
    raw["variants"] = {"cyclegan": {"family": "cyclegan", "dataset": "pairs", "epochs": 2, "batch_size": 4,
                                    "g_width": 8, "g_blocks": 1, "d_width": 8, "d_layers": 3, "pool_size": 4}}
    family = family_for(parse_params(raw).variant("cyclegan"))
    torch.manual_seed(0)
    nets = family.build(DataSpec(channels, size, 0))
    a, _ = real_batch(channels, size, 4, seed=1)
    b, _ = real_batch(channels, size, 4, seed=2)
    scalars = family.train_step(nets, family.optimizers(nets), (a, b), env())
    assert all(np.isfinite(v) for v in scalars.values()), scalars
    for direction in ("AB", "BA"):
        out = family.translate(nets, a.numpy(), direction)
        assert out.shape == a.shape and np.abs(out).max() <= 1.0, f"{direction} translations {out.shape}"
    assert family.translation_grid(nets, a.numpy(), b.numpy()).dtype == np.uint8


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_config_accepts_real_sizes(name, size):
    assert variant(name, size).dataset == "digits"


@pytest.mark.parametrize("name", ["dcgan", "cgan", "vae", "stylegan", "wgan_gp"])
def test_channels_last_trains_the_same_as_contiguous(name):
    """``channels_last: true`` changes only the weights' memory layout: three steps give the same
    losses (to float rounding: oneDNN sums in another order) and the weights stay NHWC."""
    from pipeline.train.loop import place_nets

    x, y = real_batch(3, 32)
    losses = {}
    for layout in (False, True):
        torch.manual_seed(0)
        family = family_for(variant(name, 32, channels_last=layout))
        nets = place_nets(family.build(DataSpec(3, 32, 10)), "cpu", family.cfg.channels_last)
        opts, step = family.optimizers(nets), full_growth_step(family)
        losses[layout] = [family.train_step(nets, opts, (x, y), env(step + i)) for i in range(3)]
        convs = [p for net in nets.values() for p in net.parameters() if p.dim() == 4]
        fmt = torch.channels_last if layout else torch.contiguous_format
        assert convs and all(p.is_contiguous(memory_format=fmt) for p in convs), (
            f"{name}: the conv weights' layout must follow channels_last={layout}")
    for plain, nhwc in zip(losses[False], losses[True]):
        assert plain.keys() == nhwc.keys()
        for key in plain:
            assert nhwc[key] == pytest.approx(plain[key], rel=1e-3, abs=1e-4), f"{name} {key}: {plain} vs {nhwc}"
