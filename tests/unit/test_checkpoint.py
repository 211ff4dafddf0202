"""Checkpoint round trip and exact resume, with the in-process session (no Ray needed)."""

import pytest
import torch

from helpers import tiny_params
from pipeline.config import parse_params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.families.base import StepEnv
from pipeline.train.checkpoint import load_checkpoint, restore, save_checkpoint
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession


def build(cfg):
    family = family_for(cfg)
    torch.manual_seed(0)
    nets = family.build(DataSpec(channels=1, image_size=16, num_classes=10))
    return family, nets, family.optimizers(nets)


def assert_same_state(nets_a, nets_b):
    for name in nets_a:
        for (key, a), (_, b) in zip(nets_a[name].state_dict().items(), nets_b[name].state_dict().items()):
            assert torch.equal(a, b), f"{name}.{key} differs"


def test_checkpoint_round_trip_is_exact(tmp_path):
    cfg = parse_params(tiny_params()).variant("dcgan")
    family, nets, opts = build(cfg)
    env = StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda p: None)
    for step in range(3):  # fill the Adam moments and BatchNorm statistics
        env.step = step
        family.train_step(nets, opts, (torch.rand(8, 1, 16, 16) * 2 - 1, torch.zeros(8)), env)
    history = [{"step": 1.0, "loss/D": 0.5}]
    save_checkpoint(tmp_path / "ckpt", nets, opts, step=3, epoch=1, config=cfg.model_dump(mode="json"),
                    history=history)

    state, config, loaded_history = load_checkpoint(tmp_path / "ckpt")
    _, fresh_nets, fresh_opts = build(cfg.model_copy(update={"seed": 99}))
    restore(fresh_nets, fresh_opts, state)
    assert_same_state(nets, fresh_nets)
    for name in opts:
        a, b = opts[name].state_dict()["state"], fresh_opts[name].state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    assert config == cfg.model_dump(mode="json") and loaded_history == history
    assert state["step"] == 3 and state["epoch"] == 1


def test_interrupted_then_resumed_training_equals_uninterrupted(tmp_path, prepared_digits):
    cfg = parse_params(tiny_params(epochs=2)).variant("dcgan")
    job = TrainJob("dcgan", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict()

    straight = LocalSession(tmp_path / "straight")
    train_loop(job, straight)

    class StopAfterOneEpoch(LocalSession):
        def report(self, metrics, checkpoint_dir=None):
            super().report(metrics, checkpoint_dir)
            raise KeyboardInterrupt  # the user pressed Ctrl-C after the first checkpoint

    interrupted = StopAfterOneEpoch(tmp_path / "resumed")
    try:
        train_loop(job, interrupted)
    except KeyboardInterrupt:
        pass
    resumed = LocalSession(tmp_path / "resumed")
    train_loop(job, resumed)

    assert [r["step"] for r in resumed.reports] == [straight.reports[1]["step"]]  # only epoch 2 re-ran
    state_a, _, history_a = load_checkpoint(straight.latest_checkpoint())
    state_b, _, history_b = load_checkpoint(resumed.latest_checkpoint())
    for name in state_a["nets"]:
        for key in state_a["nets"][name]:
            assert torch.equal(state_a["nets"][name][key], state_b["nets"][name][key]), f"{name}.{key}"
    assert history_a == history_b


def test_changed_config_starts_fresh(tmp_path, prepared_digits, caplog):
    cfg = parse_params(tiny_params(epochs=1)).variant("dcgan")
    session = LocalSession(tmp_path)
    train_loop(TrainJob("dcgan", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict(), session)
    changed = cfg.model_copy(update={"lr_g": 1e-3})
    train_loop(TrainJob("dcgan", changed.model_dump(mode="json"), str(prepared_digits)).to_dict(), session)
    assert session.reports[-1]["epoch"] == 1 and session.reports[-1]["step"] == session.reports[0]["step"]
    assert "different config; starting fresh" in caplog.text


def test_short_epochs_report_every_few_epochs_and_the_last_always(tmp_path, prepared_digits):
    from pipeline.train.loop import report_interval

    assert [report_interval(n) for n in (1, 2, 3, 19, 20, 22, 200)] == [20, 10, 7, 2, 1, 1, 1]
    # Batch 512 of 1,437 images: 2 steps per epoch, so a report (checkpoint) every 10 epochs.
    cfg = parse_params(tiny_params(epochs=13)).variant("dcgan").model_copy(update={"batch_size": 512})
    session = LocalSession(tmp_path)
    train_loop(TrainJob("dcgan", cfg.model_dump(mode="json"), str(prepared_digits)).to_dict(), session)
    assert [(r["epoch"], r["step"]) for r in session.reports] == [(10, 20), (13, 26)]
    _, _, history = load_checkpoint(session.latest_checkpoint())
    assert [h["step"] for h in history] == list(range(1, 27))  # every step is in the history
    first = session.reports[0]
    assert first["loss/D"] == pytest.approx(sum(h["loss/D"] for h in history[:20]) / 20)  # mean since the last report
