"""StyleGAN pieces: AdaIN, growth and fade-in, style mixing, truncation, the training step."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import stylegan_params
from pipeline.models.stylegan import AdaIN, MappingNetwork, StyleDiscriminator, StyleGenerator, mixed_latents
from pipeline.style_eval import path_images, trimmed_mean


@pytest.mark.parametrize("equalized_lr", [True, False])
def test_adain_normalises_each_channel_then_applies_the_style(equalized_lr):
    torch.manual_seed(0)
    adain = AdaIN(channels=3, w_dim=5, equalized_lr=equalized_lr)
    x = torch.randn(2, 3, 8, 8) * 4 + 7
    w = torch.randn(2, 5)
    if equalized_lr:
        with torch.no_grad():
            adain.style.weight.zero_()  # the plain layer starts so
    plain = adain(x, w)  # style (scale 0, bias 0): plain instance normalisation
    assert torch.allclose(plain.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(plain.std(dim=(2, 3), unbiased=False), torch.ones(2, 3), atol=1e-3)
    with torch.no_grad():
        adain.style.weight.normal_()
        adain.style.bias.normal_()
    scale, bias = adain.style(w).chunk(2, dim=1)  # [2, 3] each
    styled = adain(x, w)
    assert torch.allclose(styled.mean(dim=(2, 3)), bias, atol=1e-4)
    assert torch.allclose(styled.std(dim=(2, 3), unbiased=False), (1 + scale).abs(), atol=1e-3)


@pytest.mark.parametrize("phase, alpha", [(0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (2, 0.25), (2, 1.0)])
def test_shapes_at_every_phase_and_during_fade_in(phase, alpha):
    G, D = StyleGenerator(8, 16, 2, 3, 16, 8), StyleDiscriminator(3, 16, 8)
    G.set_growth(phase, alpha)
    D.set_growth(phase, alpha)
    images = G(torch.randn(4, 8))
    size = 4 * 2 ** phase
    assert images.shape == (4, 3, size, size) and images.abs().max() <= 1
    assert D(images).shape == (4,)


def test_halved_widths_thin_the_high_resolutions_at_every_phase_and_fade():
    from pipeline.models.stylegan import resolution_widths

    assert resolution_widths(32, 32, 8) == [32, 32, 16, 8] and resolution_widths(32, 32) == [32] * 4
    G, D = StyleGenerator(8, 16, 2, 1, 32, 16, halve_width_above=8), StyleDiscriminator(1, 32, 16, halve_width_above=8)
    assert G.synthesis.to_rgb[3].weight.shape[1] == 4 and D.from_rgb[3].weight.shape[0] == 4
    for phase, alpha in [(0, 1.0), (2, 0.5), (3, 0.3), (3, 1.0)]:
        G.set_growth(phase, alpha)
        D.set_growth(phase, alpha)
        images = G(torch.randn(4, 8))
        assert images.shape == (4, 1, 4 * 2 ** phase, 4 * 2 ** phase) and D(images).shape == (4,)


def _with_noise_seed(G, z, seed=0):
    torch.manual_seed(seed)
    return G(z)


def test_fade_in_alpha_0_is_the_previous_resolution_upsampled_and_alpha_1_only_the_new_block():
    torch.manual_seed(0)
    G = StyleGenerator(8, 16, 2, 1, 16, 8)
    for layer in G.synthesis.layers:  # noise on, so the check covers it too
        torch.nn.init.normal_(layer.noise.scale)
    z = torch.randn(3, 8)
    G.set_growth(1, 1.0)
    previous = _with_noise_seed(G, z)  # 8x8, fully grown
    G.set_growth(2, 0.0)
    faded_out = _with_noise_seed(G, z)  # 16x16 with the new block at weight 0
    assert torch.allclose(faded_out, F.interpolate(previous, scale_factor=2, mode="nearest"), atol=1e-6)
    G.set_growth(2, 1.0)
    full = _with_noise_seed(G, z)
    with torch.no_grad():  # changing the previous resolution's toRGB changes nothing at alpha = 1
        G.synthesis.to_rgb[1].weight.add_(1.0)
    assert torch.allclose(_with_noise_seed(G, z), full)
    G.set_growth(2, 0.5)
    assert not torch.allclose(_with_noise_seed(G, z), full)


def test_the_discriminator_fades_in_the_same_way():
    torch.manual_seed(0)
    D = StyleDiscriminator(1, 16, 8)
    x = torch.randn(4, 1, 16, 16)
    D.set_growth(2, 0.0)
    faded_out = D(x)
    D.set_growth(1, 1.0)
    assert torch.allclose(faded_out, D(F.avg_pool2d(x, 2)), atol=1e-6)  # only the old path counts


def test_mixing_switches_latents_at_the_chosen_layer():
    z1, z2 = torch.zeros(3, 4), torch.ones(3, 4)
    mixed = mixed_latents(z1, z2, torch.tensor([1, 3, 6]), num_layers=6)
    assert mixed.shape == (3, 6, 4)
    assert mixed[:, :, 0].tolist() == [[0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]]
    torch.manual_seed(0)
    G = StyleGenerator(4, 8, 2, 1, 16, 8)
    ws = G.styles(mixed)
    assert torch.allclose(ws[1, 3], G.mapping(z2[:1])[0]) and torch.allclose(ws[1, 2], G.mapping(z1[:1])[0])


def test_truncation_psi_0_gives_the_mean_image_for_any_z():
    torch.manual_seed(0)
    G = StyleGenerator(8, 16, 2, 1, 16, 8).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for layer in G.synthesis.layers:  # styles matter (a fresh AdaIN ignores w)
            layer.adain.style.weight.normal_()
    za, zb = torch.randn(2, 8), torch.randn(2, 8) * 5

    def draw(z, psi=1.0):
        torch.manual_seed(1)  # the same per-pixel noise for every draw
        return G(z, psi=psi)

    assert torch.allclose(draw(za, 0.0), draw(zb, 0.0))
    torch.manual_seed(1)
    mean_image = G.synthesis(G.mapping.w_avg.expand(2, G.num_layers, -1), 2, 1.0)
    assert torch.allclose(draw(za, 0.0), mean_image)
    assert not torch.allclose(draw(za), draw(zb))  # without truncation z matters
    assert (draw(za, 0.5) - mean_image).abs().mean() < (draw(za) - mean_image).abs().mean()


def test_path_images_step_a_short_way_along_paths_between_their_ends():
    torch.manual_seed(0)
    G = StyleGenerator(8, 16, 2, 1, 16, 8).eval()
    with torch.no_grad():
        for layer in G.synthesis.layers:  # styles matter (a fresh AdaIN ignores w)
            layer.adain.style.weight.normal_()
    for space in ("w", "z"):
        a, b, end1, end2 = path_images(G, 6, seed=3, space=space, eps=1e-4, with_ends=True)
        assert a.shape == end1.shape == (6, 1, 16, 16)
        step, across = np.abs(a - b).max(axis=(1, 2, 3)), np.abs(end1 - end2).max(axis=(1, 2, 3))
        assert (step < 1e-2 * across).all()  # t and t + eps are close; the two ends are not
        assert len(path_images(G, 6, seed=3, space=space)) == 2
        assert np.array_equal(path_images(G, 6, seed=3, space=space)[0], a)  # seeded


def test_trimmed_mean_drops_the_values_outside_the_1st_to_99th_percentile():
    values = np.r_[np.ones(98), -1000.0, 1000.0]
    assert trimmed_mean(values) == 1.0


def test_mapping_keeps_the_scale_of_the_normalised_z():
    torch.manual_seed(0)
    w = MappingNetwork(64, 64, 4)(torch.randn(4000, 64))
    assert 0.5 < w.pow(2).mean().sqrt() < 2  # (PyTorch's default init gave 0.05: styles that barely vary)


def test_mapping_without_layers_is_the_normalised_z():
    m = MappingNetwork(6, 6, 0)
    z = torch.randn(5, 6) * 3
    assert torch.allclose(m(z).pow(2).mean(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(AssertionError, match="w_dim must equal z_dim"):
        MappingNetwork(6, 8, 0)


def test_growth_state_travels_in_state_dicts_and_not_through_copies():
    G = StyleGenerator(8, 16, 2, 1, 16, 8)
    ema = copy.deepcopy(G)
    G.set_growth(1, 0.25)
    assert ema.growth == (2, 1.0)  # a copy has its own growth
    ema.load_state_dict(G.state_dict())
    assert ema.growth == (1, 0.25) and float(ema.alpha) == 0.25


def test_growth_schedule_counts_images():
    from pipeline.config import parse_params
    from pipeline.families import family_for
    from pipeline.data import DataSpec

    family = family_for(parse_params(stylegan_params(phase_images=700, fade_images=700)).variant("stylegan"))
    family.build(DataSpec(1, 16, 10))
    assert [family.growth(t) for t in (0, 699, 700, 1050, 1400, 2099, 2100, 2450, 2800, 10**6)] == [
        (0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0), (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    assert family.images_to_full_size() == 2800


@pytest.mark.slow
def test_training_crosses_phases_and_resumes_inside_a_fade_exactly(tmp_path, prepared_digits):
    from pipeline.config import parse_params
    from pipeline.train.checkpoint import load_checkpoint
    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    cfg = parse_params(stylegan_params(augment=["translation"])).variant("stylegan")
    job = TrainJob("stylegan", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict()
    straight = LocalSession(tmp_path / "straight")
    train_loop(job, straight)
    phases = [r["growth/phase"] for r in straight.reports]  # per-epoch means
    assert phases[0] < 1 < phases[1] < 2 == phases[2]
    assert all(math.isfinite(r["D/logit_gap"]) for r in straight.reports)  # the health signal, per epoch

    class StopAfterTwoEpochs(LocalSession):
        def report(self, metrics, checkpoint_dir=None):
            super().report(metrics, checkpoint_dir)
            if len(self.reports) == 2:
                raise KeyboardInterrupt  # stopped while 16x16 fades in

    try:
        train_loop(job, StopAfterTwoEpochs(tmp_path / "resumed"))
    except KeyboardInterrupt:
        pass
    state, _, _ = load_checkpoint(LocalSession(tmp_path / "resumed").latest_checkpoint())
    assert int(state["nets"]["G"]["phase"]) == 2 and 0 < float(state["nets"]["G"]["alpha"]) < 1
    assert state["nets"]["G_ema"]["mapping.w_avg"].abs().sum() > 0  # the truncation centre is kept
    resumed = LocalSession(tmp_path / "resumed")
    train_loop(job, resumed)
    a, _, _ = load_checkpoint(straight.latest_checkpoint())
    b, _, _ = load_checkpoint(resumed.latest_checkpoint())
    for name in a["nets"]:
        for key in a["nets"][name]:
            assert torch.equal(a["nets"][name][key], b["nets"][name][key]), f"{name}.{key}"


def test_style_metrics_mixing_grid_and_the_mix_command(tmp_path, prepared_digits, evaluator):
    import numpy as np

    from pipeline.__main__ import main
    from pipeline.config import parse_params
    from pipeline.data import load_prepared
    from pipeline.families import family_for
    from pipeline.sampling import sample_picture, save_generator
    from pipeline.style_eval import mixing_grid, style_metrics
    from pipeline.train.checkpoint import load_checkpoint, restore
    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    cfg = parse_params(stylegan_params(epochs=2, phase_images=300, fade_images=300)).variant("stylegan")
    train_loop(TrainJob("stylegan", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict(),
               LocalSession(tmp_path / "run"))
    data = load_prepared(prepared_digits)
    family = family_for(cfg)
    nets = family.build(data.spec)
    state, _, _ = load_checkpoint(LocalSession(tmp_path / "run").latest_checkpoint())
    restore(nets, family.optimizers(nets), state)
    assert nets["G_ema"].growth == (2, 1.0)

    metrics = style_metrics(family, nets, evaluator, 60, seed=0, ppl_pairs=200)
    assert metrics["ppl_z"] > 0 and metrics["ppl_w"] > 0 and metrics["ppl_pairs"] == 200
    if metrics["mix_pairs"]:  # (two epochs of a tiny G may still draw one class only)
        assert 0 <= metrics["mix_follows_coarse"] <= 1 and 0 <= metrics["mix_follows_fine"] <= 1
        assert metrics["mix_follows_coarse"] + metrics["mix_follows_fine"] <= 1
    else:
        assert metrics["mix_follows_coarse"] is None
    assert {f"truncation/{psi}/{k}" for psi in (1.0, 0.5) for k in ("fid", "recall", "diversity")} <= set(metrics)
    assert metrics["truncation/0.5/diversity"] < metrics["truncation/1.0/diversity"]  # truncation narrows

    grid = mixing_grid(nets["G_ema"], 3, seed=0)
    assert grid.shape == (16, 1, 16, 16) and np.all(grid[0] == -1)  # (3 + 1)^2 cells, the corner blank
    assert sample_picture(family, nets, data).shape[0] > sample_picture(family, nets, data).shape[1]

    save_generator(tmp_path / "models" / "stylegan", family, nets, data.spec)
    assert main(["mix", "stylegan", "--out", str(tmp_path / "grid.png"), "--models", str(tmp_path / "models")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_mixing_crossovers_fall_inside_the_active_layers():
    from pipeline.config import parse_params
    from pipeline.families import family_for

    family = family_for(parse_params(stylegan_params(mixing_prob=1.0)).variant("stylegan"))
    torch.manual_seed(0)
    for phase, active in ((0, 2), (1, 4), (2, 6)):
        zs = family.latents(500, torch.device("cpu"), num_layers=6, phase=phase)
        switched = (zs[:, 1:] != zs[:, :1]).any(dim=2)  # [N, 5]: layer l+1 differs from layer 0
        first = switched.float().argmax(dim=1) + 1       # the crossover layer of each sample
        assert switched.any(dim=1).all() and first.max() < active and first.min() >= 1


def test_a_schedule_longer_than_training_and_stylegan_tuning_are_refused():
    from pipeline.config import ConfigError, parse_params
    from pipeline.train.driver import check_runtime

    params = parse_params(stylegan_params(epochs=2))  # 2 x 1,408 images < 4,000 to full size
    with pytest.raises(ConfigError) as info:
        check_runtime(params, "stylegan", n_train=1437)
    assert info.value.problems == [
        "params.yaml: variants.stylegan.epochs = 2: 2,816 training images, but the growth schedule (phase_images "
        "600, fade_images 1400) reaches full size after 4,000; allowed: epochs >= 3 or a shorter schedule"]
    check_runtime(parse_params(stylegan_params()), "stylegan", n_train=1437)
    raw = stylegan_params()
    raw["tune"] = {"stylegan": {"max_epochs": 3, "space": {"lr_g": "loguniform(1e-4, 1e-2)"}}}
    with pytest.raises(ConfigError, match="tune.stylegan: tuning a stylegan variant is not supported yet"):
        parse_params(raw)


def test_lazy_r1_penalises_on_every_kth_step_only_and_k_times_as_strongly():
    from pipeline.config import parse_params
    from pipeline.data import DataSpec
    from pipeline.families import family_for
    from pipeline.families.base import StepEnv, autocast_for

    def reported_r1(every: int, steps: int) -> list[float]:
        family = family_for(parse_params(stylegan_params(r1_every=every, r1_gamma=1.0)).variant("stylegan"))
        torch.manual_seed(0)
        nets = family.build(DataSpec(channels=1, image_size=16, num_classes=10))
        opts = family.optimizers(nets)
        env = StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda params: None,
                      autocast=autocast_for("fp32", torch.device("cpu")))
        values = []
        for step in range(steps):
            env.step = step
            torch.manual_seed(100 + step)
            values.append(family.train_step(nets, opts, (torch.rand(8, 1, 16, 16) * 2 - 1, None), env)["loss/R1"])
        return values

    lazy = reported_r1(3, 6)
    assert [v > 0 for v in lazy] == [True, False, False, True, False, False]
    # Step 0 starts from the same networks and batch: the penalty weighted in is 3x the every-step one.
    assert lazy[0] == pytest.approx(3 * reported_r1(1, 1)[0], rel=1e-5)


def test_a_stylegan_saved_before_the_equalised_rate_loads_with_plain_layers(tmp_path):
    from pipeline.config import parse_params
    from pipeline.data import DataSpec
    from pipeline.families import family_for
    from pipeline.sampling import load_generator, save_generator

    cfg = parse_params(stylegan_params(equalized_lr=False)).variant("stylegan")
    family = family_for(cfg)
    nets = family.build(DataSpec(channels=1, image_size=16, num_classes=10))
    save_generator(tmp_path, family, nets, DataSpec(channels=1, image_size=16, num_classes=10))
    config_file = tmp_path / "config.json"
    import json

    config = json.loads(config_file.read_text())
    del config["equalized_lr"]  # as written before the field existed
    config_file.write_text(json.dumps(config))
    loaded_family, loaded, _ = load_generator(tmp_path)
    assert loaded_family.cfg.equalized_lr is False
    z = torch.randn(4, 8)
    torch.manual_seed(1)
    expected = nets["G_ema"].eval()(z)
    torch.manual_seed(1)
    assert torch.allclose(loaded["G_ema"](z), expected)
