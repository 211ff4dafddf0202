"""Divergence stops a run with a one-line reason and keeps only finite checkpoints; mode collapse is
a logged signal (pipeline/train/health.py, docs/reliability.md). The faults are real: a NaN written
into a weight (the documented GAN_LAB_INJECT_NAN_AT_STEP hook) goes through real forward passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import tiny_params
from pipeline.config import ConfigError, parse_params
from pipeline.schemas import DivergenceRule
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.health import (WORST_OBJECTIVE, CollapseMonitor, DivergenceWatch, injected_fault_step,
                                   real_reference)
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession
from pipeline.tune.results import best_summary, trial_rows


def test_the_first_non_finite_scalar_is_named_with_its_step():
    watch = DivergenceWatch()
    assert not watch.step({"loss/D": 0.7, "loss/G": 1.2}, step=1, epoch=1)
    assert watch.step({"loss/D": float("nan"), "loss/G": float("inf")}, step=2, epoch=1)
    assert watch.step({"loss/D": float("inf")}, step=3, epoch=1)
    assert watch.reason == "non-finite loss/D = nan at step 2 (epoch 1)"  # the first one is kept
    assert watch.end_epoch(1, 3) == watch.reason


def test_the_saturation_rule_needs_k_saturated_epochs_in_a_row():
    watch = DivergenceWatch(DivergenceRule(saturated_epochs=2, margin=0.05))
    epochs = [(0.99, 0.01), (0.7, 0.3), (0.99, 0.02), (0.98, 0.01)]  # (D/real, D/fake) per epoch
    reasons = []
    for epoch, (real, fake) in enumerate(epochs, start=1):
        for step in range(3):
            watch.step({"D/real": real, "D/fake": fake}, step=epoch * 3 + step, epoch=epoch)
        reasons.append(watch.end_epoch(epoch, epoch * 3 + 2))
    assert reasons[:3] == [None, None, None]  # epoch 2 broke the run of saturated epochs
    assert reasons[3].startswith("D saturated (mean D/real = 0.9800, D/fake = 0.0100, margin 0.05) for 2 epochs")
    assert reasons[3].endswith("at step 14 (epoch 4)")


def test_no_rule_by_default_and_a_bad_rule_is_refused():
    assert parse_params(tiny_params()).variant("dcgan").divergence is None
    rule = parse_params(tiny_params(divergence={"saturated_epochs": 3})).variant("dcgan").divergence
    assert rule == DivergenceRule(saturated_epochs=3, margin=0.01)
    with pytest.raises(ConfigError) as err:
        parse_params(tiny_params(divergence={"saturated_epochs": 0, "margin": 0.7}))
    text = str(err.value)
    assert "variants.dcgan.divergence.saturated_epochs" in text and "variants.dcgan.divergence.margin" in text


def test_the_fault_hook_is_off_unless_set(monkeypatch):
    monkeypatch.delenv("GAN_LAB_INJECT_NAN_AT_STEP", raising=False)
    assert injected_fault_step() is None
    monkeypatch.setenv("GAN_LAB_INJECT_NAN_AT_STEP", "30")
    assert injected_fault_step() == 30


def test_a_nan_in_epoch_two_stops_at_once_and_keeps_epoch_ones_checkpoint(prepared_digits, tmp_path):
    cfg = parse_params(tiny_params(epochs=3)).variant("dcgan")  # 22 steps per epoch
    job = TrainJob("dcgan", cfg.model_dump(mode="json"), str(prepared_digits), fault_step=30).to_dict()
    session = LocalSession(tmp_path)
    reason = train_loop(job, session)

    assert reason.startswith("non-finite loss/D = nan at step 30 (epoch 2)"), reason
    assert [r.get("diverged") for r in session.reports] == [None, 1.0]  # epoch 1, then the stop
    assert session.reports[-1]["step"] == 30  # stopped at the bad step, not at the end of the epoch
    checkpoints = sorted(tmp_path.glob("checkpoint_*"))
    assert [c.name for c in checkpoints] == ["checkpoint_000001"]  # the stop carries no checkpoint
    state, _, _ = load_checkpoint(checkpoints[0])
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for net in state["nets"].values()
                                       for t in net.values() if t.is_floating_point())


class OneImage(nn.Module):
    """A collapsed generator: the same image whatever z."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = nn.Parameter(image)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.image.expand(z.shape[0], *self.image.shape)


def test_a_generator_that_outputs_one_image_is_flagged_and_real_data_is_not(prepared_digits):
    from pipeline.data import load_prepared

    data = load_prepared(prepared_digits)
    monitor = CollapseMonitor(real_reference(data.x_test, 256))
    collapsed = OneImage(torch.as_tensor(real_reference(data.x_train[:1], 1)[0]))
    one_image = collapsed(torch.randn(64, 16)).detach().numpy()
    # A generator that has not yet been diverse (an untrained one, StyleGAN at 4x4) is not flagged...
    assert monitor.measure(one_image) == {"health/spread": 0.0, "health/spread_ratio": 0.0, "health/collapsed": 0.0}
    real = monitor.measure(real_reference(data.x_train, 64))
    assert 0.8 < real["health/spread_ratio"] < 1.2 and real["health/collapsed"] == 0.0
    # ... one that was diverse and now outputs one image is.
    health = monitor.measure(one_image)
    assert health["health/spread_ratio"] == 0.0 and health["health/collapsed"] == 1.0


def test_a_diverged_trial_is_ranked_last_and_never_best():
    worst = WORST_OBJECTIVE["min"]
    records = [
        {"trial_id": "t_00000", "config": {"lr_g": 5e-4}, "error": None,
         "reports": [{"epoch": 1, "objective": 0.30}, {"epoch": 2, "objective": 0.20}]},
        # Better than t_00000 before it diverged: never the best all the same.
        {"trial_id": "t_00001", "config": {"lr_g": 1.0}, "error": None,
         "reports": [{"epoch": 1, "objective": 0.10, "diverged": math.nan},
                     {"epoch": 2, "objective": worst, "diverged": 1.0}]},
    ]
    rows = trial_rows(records, ["lr_g"], {"lr_g": 5e-4}, "min", max_epochs=2)
    assert [r["status"] for r in rows] == ["completed", "diverged"]
    assert rows[1]["objective"] == 0.10  # its last finite objective, for the record
    assert best_summary(rows, ["lr_g"], "min")["best"]["trial_id"] == "t_00000"
    with pytest.raises(RuntimeError):
        best_summary(rows[1:], ["lr_g"], "min")


def test_health_metrics_need_no_rng():
    state = torch.random.get_rng_state()
    CollapseMonitor(np.zeros((4, 2), np.float32)).measure(np.ones((4, 2), np.float32))
    assert torch.equal(state, torch.random.get_rng_state())


def test_a_collapse_is_logged_and_tags_the_run_once(prepared_digits, tmp_path, caplog):
    from mlflow.tracking import MlflowClient

    from pipeline import tracking
    from pipeline.data import load_prepared
    from pipeline.train.loop import _log_health

    uri = tracking.tracking_uri(tmp_path)
    run_id = tracking.start_run(uri, tracking.ensure_experiment(uri, tmp_path), "collapse", {}, {})
    logger = tracking.RunLogger(uri, run_id)
    data = load_prepared(prepared_digits)
    monitor = CollapseMonitor(real_reference(data.x_test, 256))
    collapsed = OneImage(torch.as_tensor(real_reference(data.x_train[:1], 1)[0]))
    diverse = real_reference(data.x_train, 64)  # epoch 1: as diverse as the data; then one image
    for epoch, samples in enumerate([diverse, collapsed(torch.randn(64, 16)).detach().numpy()] * 2, start=1):
        _log_health(logger, monitor, samples, 10 * epoch, epoch, "dcgan")
    logger.flush()

    client = MlflowClient(uri)
    assert [m.value for m in client.get_metric_history(run_id, "health/collapsed")] == [0.0, 1.0, 0.0, 1.0]
    assert client.get_run(run_id).data.tags["health.warning"].startswith("possible mode collapse at epoch 2: ")
    assert sum("possible mode collapse" in r.getMessage() for r in caplog.records) == 1


def test_broken_weights_are_found_by_name():
    from pipeline.train.health import nonfinite_weights

    nets = {"G": nn.Linear(2, 2), "D": nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))}
    assert nonfinite_weights(nets) is None
    with torch.no_grad():
        nets["D"][1].weight[0, 2] = float("inf")
    assert nonfinite_weights(nets) == "D.1.weight"
