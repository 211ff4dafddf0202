"""Stacked digits: construction with per-channel labels, unstacking, and the 1,000-mode metrics."""

import math

import numpy as np
import pytest

from pipeline.config import StackedDigitsConfig
from pipeline.data import load_prepared, prepare
from pipeline.data.stacked import channel_labels, mode_index, stack_digits, unstack
from pipeline.metrics.modes import stacked_mode_metrics


def test_each_channel_is_an_independent_digit_with_its_label():
    # Ten 2x2 "digit images" whose pixel value is their class, so every channel shows its label.
    images = np.repeat(np.arange(10, dtype=np.uint8), 4).reshape(10, 1, 2, 2)
    labels = np.arange(10)
    stacked, modes = stack_digits(images, labels, n=5000, seed=0)
    assert stacked.shape == (5000, 3, 2, 2) and stacked.dtype == np.uint8
    per_channel = channel_labels(modes)
    assert np.array_equal(stacked[:, :, 0, 0], per_channel)  # the label of channel k is its digit
    assert np.array_equal(mode_index(per_channel), modes)
    assert modes.min() >= 0 and modes.max() < 1000 and len(np.unique(modes)) > 900
    assert abs(np.corrcoef(per_channel[:, 0], per_channel[:, 1])[0, 1]) < 0.05  # independent channels
    assert mode_index(np.array([[7, 0, 3]]))[0] == 703


def test_unstack_recovers_the_distinct_source_digits():
    images = np.repeat(np.arange(10, dtype=np.uint8), 4).reshape(10, 1, 2, 2)
    stacked, modes = stack_digits(images, np.arange(10), n=200, seed=1)
    singles, classes = unstack(stacked, modes)
    assert singles.shape == (10, 1, 2, 2) and sorted(classes.tolist()) == list(range(10))
    assert np.array_equal(singles[:, 0, 0, 0], classes)


def test_prepared_stacks_keep_test_digits_out_of_training(tmp_path):
    meta = prepare(StackedDigitsConfig(kind="stacked_digits", n_train=300, n_test=200), tmp_path / "s.npz")
    assert meta["channels"] == 3 and meta["num_classes"] == 1000 and meta["classes_per_channel"] == 10
    data = load_prepared(tmp_path / "s.npz")
    train_digits, _ = unstack(data.x_train, data.y_train)
    test_digits, _ = unstack(data.x_test, data.y_test)
    seen = {d.tobytes() for d in train_digits}
    assert not any(d.tobytes() in seen for d in test_digits)


def test_stacked_mode_metrics_on_constructed_predictions():
    every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    assert stacked_mode_metrics(every) == {"modes": 1000, "kl": pytest.approx(0.0, abs=1e-12)}
    one = np.tile([[1, 2, 3]], (50, 1))
    assert stacked_mode_metrics(one) == {"modes": 1, "kl": pytest.approx(math.log(1000))}
    half = np.concatenate([every[:500], every[:500]])  # 500 modes, evenly: KL = log 2
    assert stacked_mode_metrics(half) == {"modes": 500, "kl": pytest.approx(math.log(2))}
