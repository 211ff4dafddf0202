"""The evaluation protocol on real data: floors, ordering, and the equal-N rule."""


import numpy as np
import pytest

from helpers import tiny_params
from pipeline.config import ConfigError, parse_params
from pipeline.data import load_prepared, to_unit_range
from pipeline.evaluate import image_metrics, sample_count


def test_real_images_score_near_the_floor_and_noise_far_above(evaluator, prepared_digits):
    cfg = parse_params(tiny_params()).variant("dcgan")
    data = load_prepared(prepared_digits)
    n = sample_count(cfg, len(data.x_test))
    real = image_metrics(evaluator, to_unit_range(data.x_train[:n]), cfg, n)
    noise = image_metrics(evaluator, np.random.default_rng(0).uniform(-1, 1, (n, 1, 16, 16)), cfg, n)
    assert real["fid_floor"] == noise["fid_floor"] > 0
    assert real["fid"] < 3 * real["fid_floor"]
    assert noise["fid"] > 50 * real["fid"]
    assert noise["kid_mean"] > 10 * abs(real["kid_mean"]) and noise["kid_std"] > 0


def test_more_samples_than_the_test_split_is_refused():
    cfg = parse_params(tiny_params(eval={"n_samples": 500})).variant("dcgan")
    with pytest.raises(ConfigError, match=r"variants.dcgan.eval.n_samples = 500: at most the test split size \(360\)"):
        sample_count(cfg, 360, "dcgan")


