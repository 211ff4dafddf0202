"""CycleGAN: networks on several sizes, the image pool, the lr schedule, the loss terms by hand, a
training step, exact resume with the pools, and the translation metrics."""

import numpy as np
import pytest
import torch

from helpers import tiny_params
from pipeline.config import ConfigError, DigitsToTypedConfig, EvaluatorConfig, parse_params
from pipeline.data import DataSpec, load_prepared, prepare
from pipeline.evaluate import evaluate_translation
from pipeline.evaluator import build_evaluator
from pipeline.families import family_for
from pipeline.families.base import StepEnv
from pipeline.families.cyclegan import lr_factor
from pipeline.losses import l1_distance, lsgan_discriminator, lsgan_generator
from pipeline.models.cyclegan import ImagePool, PatchDiscriminator, ResnetGenerator
from pipeline.train.checkpoint import load_checkpoint, restore, save_checkpoint


def cyclegan_raw(**overrides) -> dict:
    raw = tiny_params()
    raw["datasets"]["d2t"] = {"kind": "digits_to_typed", "image_size": 16, "typed_train": 200, "typed_test": 60}
    raw["evaluators"]["d2t"] = {"epochs": 2}
    raw["variants"]["cyclegan"] = {"family": "cyclegan", "dataset": "d2t", "epochs": 4, "batch_size": 8,
                                   "g_width": 8, "g_blocks": 1, "d_width": 8, "pool_size": 5, **overrides}
    return raw


@pytest.mark.parametrize("size,channels", [(8, 1), (16, 1), (16, 3), (32, 3)])
def test_networks_keep_the_image_shape_and_score_patches(size, channels):
    G, D = ResnetGenerator(channels, channels, ngf=8, n_blocks=2), PatchDiscriminator(channels, 8, n_layers=1)
    x = torch.rand(2, channels, size, size) * 2 - 1
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    patches = size // 2 - 2  # one stride-2 conv, then two 4x4 stride-1 convs with padding 1
    assert D(x).shape == (2, 1, patches, patches)
    with pytest.raises(AssertionError, match="multiple of 4"):
        G(torch.zeros(1, channels, size + 2, size + 2))


def test_patchgan_with_two_layers_scores_2x2_patches_of_16px_images():
    assert PatchDiscriminator(1, 8, n_layers=2)(torch.zeros(3, 1, 16, 16)).shape == (3, 1, 2, 2)


def test_image_pool_fills_then_returns_old_fakes_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4  # filling: returned as they are
    assert torch.equal(pool.images, first)
    new = torch.arange(100.0, 500.0).view(400, 1, 1, 1).expand(400, 1, 2, 2)
    out = pool.query(new)
    swapped = out[:, 0, 0, 0] != new[:, 0, 0, 0]
    assert 0.4 < swapped.float().mean().item() < 0.6  # half the time an older fake comes back
    assert out[swapped, 0, 0, 0].lt(new[swapped, 0, 0, 0]).all()  # ... one stored earlier
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(new), new)  # size 0: no history


def test_image_pool_contents_are_in_its_state_dict():
    pool = ImagePool(3, (1, 2, 2))
    pool.query(torch.ones(2, 1, 2, 2))
    other = ImagePool(3, (1, 2, 2))
    other.load_state_dict(pool.state_dict())
    assert int(other.count) == 2 and torch.equal(other.images, pool.images)


def test_lr_is_constant_then_decays_linearly():
    factors = [lr_factor(e, 10, 5) for e in range(10)]
    assert factors[:5] == [1.0] * 5
    assert factors[5:] == pytest.approx([1 - k / 6 for k in range(1, 6)])
    assert [lr_factor(e, 4, 0) for e in range(4)] == [1.0] * 4


def test_loss_terms_by_hand():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5])
    # 1/2 * (mean((1-1)^2, (0.5-1)^2) + mean(0^2, 0.5^2)) = 1/2 * (0.125 + 0.125)
    assert lsgan_discriminator(real, fake).item() == pytest.approx(0.125)
    assert lsgan_generator(torch.tensor([0.5, 1.0])).item() == pytest.approx(0.125)  # mean(0.25, 0)
    assert l1_distance(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.0])).item() == pytest.approx(0.75)


def test_config_refuses_mismatched_datasets_and_sizes():
    raw = cyclegan_raw(dataset="digits", decay_epochs=9, d_layers=3)
    raw["variants"]["dcgan"]["dataset"] = "d2t"
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    text = str(err.value)
    assert "variants.cyclegan.dataset = 'digits': family 'cyclegan' translates between two domains" in text
    assert "variants.dcgan.dataset = 'd2t': a two-domain dataset is for family cyclegan" in text
    with pytest.raises(ConfigError) as err:
        parse_params(cyclegan_raw(decay_epochs=9, d_layers=3, g_downsample=4))
    assert "variants.cyclegan.decay_epochs = 9: at most epochs (4)" in str(err.value)
    assert "variants.cyclegan.g_downsample = 4: too many for 16x16 images" in str(err.value)
    assert "variants.cyclegan.d_layers = 3: too deep for 16x16 images; allowed: 1 .. 2" in str(err.value)


def step_env(epoch: int = 0) -> StepEnv:
    return StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda params: None, epoch=epoch)


def batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=g) * 2 - 1, torch.rand(n, 1, 16, 16, generator=g) * 2 - 1


def test_train_step_reports_terms_and_follows_the_schedule():
    fam = family_for(parse_params(cyclegan_raw()).variant("cyclegan"))
    torch.manual_seed(0)
    nets = fam.build(DataSpec(1, 16, 10))
    opts = fam.optimizers(nets)
    before = nets["G_AB"].net[1].weight.clone()
    scalars = fam.train_step(nets, opts, batch(0), step_env(epoch=3))  # epochs 4, decay 2: factor 1/3
    assert scalars["lr"] == pytest.approx(2e-4 / 3)
    assert all(np.isfinite(v) for v in scalars.values())
    assert scalars["loss/G"] == pytest.approx(scalars["loss/G_adv"] + 10 * scalars["loss/cycle"]
                                              + 5 * scalars["loss/identity"], rel=1e-5)
    assert not torch.equal(before, nets["G_AB"].net[1].weight)
    assert int(nets["pool_A"].count) == 5 and int(nets["pool_B"].count) == 5  # batch 8, pool 5: full

    augmented = family_for(parse_params(cyclegan_raw(augment=["translation", "cutout"])).variant("cyclegan"))
    nets = augmented.build(DataSpec(1, 16, 10))
    assert all(np.isfinite(v) for v in augmented.train_step(nets, augmented.optimizers(nets), batch(0),
                                                             step_env()).values())

    no_cycle = family_for(parse_params(cyclegan_raw(lambda_cycle=0.0)).variant("cyclegan"))
    nets = no_cycle.build(DataSpec(1, 16, 10))
    scalars = no_cycle.train_step(nets, no_cycle.optimizers(nets), batch(0), step_env())
    assert scalars["loss/identity"] == 0.0 and scalars["loss/G"] == pytest.approx(scalars["loss/G_adv"])


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    fam = family_for(parse_params(cyclegan_raw()).variant("cyclegan"))

    def fresh():
        torch.manual_seed(0)
        nets = fam.build(DataSpec(1, 16, 10))
        return nets, fam.optimizers(nets)

    nets, opts = fresh()
    for i in range(2):  # fills the pools (size 5) past capacity, so the random swaps matter
        fam.train_step(nets, opts, batch(i), step_env())
    save_checkpoint(tmp_path / "ckpt", nets, opts, step=2, epoch=1, config={}, history=[])
    torch.manual_seed(7)
    expected = fam.train_step(nets, opts, batch(2), step_env(epoch=1))

    resumed, resumed_opts = fresh()
    state, _, _ = load_checkpoint(tmp_path / "ckpt")
    restore(resumed, resumed_opts, state)
    torch.manual_seed(7)
    assert fam.train_step(resumed, resumed_opts, batch(2), step_env(epoch=1)) == expected
    assert torch.equal(resumed["pool_B"].images, nets["pool_B"].images)


@pytest.fixture(scope="module")
def d2t(tmp_path_factory):
    """A small digits_to_typed dataset and its two domain evaluators."""
    root = tmp_path_factory.mktemp("d2t")
    prepare(DigitsToTypedConfig(kind="digits_to_typed", typed_train=300, typed_test=100), root / "d2t.npz")
    data = load_prepared(root / "d2t.npz")
    meta = build_evaluator(EvaluatorConfig(epochs=2), data, root / "evaluator")
    return data, root / "evaluator", meta


def test_digits_to_typed_has_two_labelled_domains_and_per_domain_evaluators(d2t):
    data, evaluator_dir, meta = d2t
    assert data.unpaired and data.meta["unpaired"] is True
    assert data.x_train.shape == (1437, 1, 16, 16) and data.x_train_b.shape == (300, 1, 16, 16)
    assert data.x_test_b.shape == (100, 1, 16, 16) and set(data.y_test_b) == set(range(10))
    assert meta["kind"] == "translation" and meta["labelled"] is True
    assert {p.name for p in (evaluator_dir / "B").iterdir()} == {"evaluator.pt", "reference.npz", "meta.json"}


def test_translation_metrics_of_an_untrained_cyclegan(d2t):
    data, evaluator_dir, _ = d2t
    fam = family_for(parse_params(cyclegan_raw()).variant("cyclegan"))
    torch.manual_seed(0)
    metrics = evaluate_translation(fam, fam.build(data.spec), data, str(evaluator_dir))
    for direction in ("ab", "ba"):
        assert 0.0 <= metrics[f"label_preservation_{direction}"] <= 1.0
        assert metrics[f"fid_{direction}"] > metrics[f"fid_{direction}_floor"] > 0
        assert metrics[f"fid_{direction}_over_floor"] == pytest.approx(
            metrics[f"fid_{direction}"] / metrics[f"fid_{direction}_floor"])
    assert metrics["n_samples_ab"] == 100 and metrics["n_samples_ba"] == 100  # min of the two test splits
    assert 0.0 < metrics["cycle_l1_a"] < 2.0 and 0.0 < metrics["cycle_l1_b"] < 2.0
