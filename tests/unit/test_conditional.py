"""The conditional GAN: G and D take the label, the label changes the output, class metrics work."""

import numpy as np
import pytest
import torch

from helpers import tiny_params, tiny_points_params
from pipeline.config import ConfigError, EvaluatorConfig, parse_params
from pipeline.data import DataSpec, load_prepared
from pipeline.evaluate import evaluate_conditional
from pipeline.evaluator import build_evaluator
from pipeline.families import family_for
from pipeline.families.base import StepEnv
from pipeline.metrics.features import load_evaluator

DIGITS = DataSpec(channels=1, image_size=16, num_classes=10)


def conditional_cfg(family: str):
    if family == "dcgan":
        return parse_params(tiny_params(conditional=True)).variant("dcgan")
    raw = tiny_points_params()
    raw["variants"]["gan_ns"].update(conditional=True, dataset="digits")
    return parse_params(raw).variant("gan_ns")


@pytest.mark.parametrize("family", ["dcgan", "gan"])
def test_label_enters_g_and_d_and_changes_the_output(family):
    torch.manual_seed(0)
    fam = family_for(conditional_cfg(family))
    nets = fam.build(DIGITS)
    assert fam.num_classes() == 10
    z = torch.randn(4, fam.cfg.z_dim)
    G, D = nets["G"].eval(), nets["D"].eval()
    sevens, threes = G(z, torch.full((4,), 7)), G(z, torch.full((4,), 3))
    assert sevens.shape == (4, 1, 16, 16) and not torch.allclose(sevens, threes)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert D(x, torch.full((4,), 7)).shape == (4,) and not torch.allclose(D(x, torch.full((4,), 7)), D(x, torch.full((4,), 3)))
    # The exported sampling net takes one array: z with the one-hot label appended.
    assert fam.input_example(3).shape == (3, fam.cfg.z_dim + 10)
    assert torch.allclose(G(torch.cat([z, torch.nn.functional.one_hot(torch.full((4,), 7), 10).float()], 1)), sevens)


def test_train_step_and_sampling_by_class():
    fam = family_for(conditional_cfg("dcgan"))
    nets = fam.build(DIGITS)
    opts = fam.optimizers(nets)
    batch = (torch.rand(64, 1, 16, 16) * 2 - 1, torch.randint(0, 10, (64,)))
    scalars = fam.train_step(nets, opts, batch, StepEnv(0, torch.device("cpu"), lambda params: None))
    assert all(np.isfinite(v) for v in scalars.values())
    samples = fam.sample(nets, 12, torch.Generator().manual_seed(0), cond=torch.full((12,), 5))
    assert samples.shape == (12, 1, 16, 16)
    assert fam.balanced_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_packing_with_conditional_is_refused():
    with pytest.raises(ConfigError, match="packing is not supported with conditional"):
        parse_params(tiny_params(conditional=True, pack=2))


def test_class_metrics_of_an_untrained_generator(prepared_digits, tmp_path):
    cfg = conditional_cfg("dcgan")
    evaluator_cfg = EvaluatorConfig(epochs=2)
    data = load_prepared(prepared_digits)
    build_evaluator(evaluator_cfg, data, tmp_path / "evaluator")
    fam = family_for(cfg)
    nets = fam.build(data.spec)
    metrics = evaluate_conditional(fam, nets, load_evaluator(tmp_path / "evaluator"), data, evaluator_cfg)
    assert 0 <= metrics["label_accuracy"] <= 0.5  # noise is not class-faithful
    assert metrics["intra_fid"] > metrics["intra_fid_floor"] > 0
    assert 0 <= metrics["cas"] <= 0.5 < metrics["cas_real"]
