"""Divergence through the real stack (issue 23): a NaN in training stops `train@dcgan` on Ray Train
with a one-line `error:` and exit 1, leaves models/ as it was, ends the MLflow run FAILED with the
reason, and keeps the last finite checkpoint; in a real Ray Tune search a trial with an absurd
learning rate is stopped at once and ranked last while the search goes on.

The faults are real: the documented GAN_LAB_INJECT_NAN_AT_STEP hook writes a NaN into a weight
before a step and the real forward pass propagates it; the Tune trial's lr_d of 1e29+ overflows
D's activations on its own. Tiny data, the session's Ray.
"""

from __future__ import annotations

import json
import runpy
import sys

import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from helpers import ROOT, tiny_params
from pipeline import tracking
from pipeline.config import parse_params
from pipeline.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration


def test_a_nan_stops_the_train_stage_and_keeps_the_model_and_the_last_finite_checkpoint(
        ray_cluster, prepared_digits, tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(epochs=3)))  # 22 steps per epoch: step 30 is in epoch 2
    out, plots, storage = tmp_path / "models" / "dcgan", tmp_path / "plots" / "dcgan.csv", tmp_path / "ray"
    out.mkdir(parents=True)
    (out / "generator.pt").write_bytes(b"the model of an earlier, good run")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.ensure_experiment(uri, tmp_path)  # (artifacts under tmp_path, not the repository)
    monkeypatch.setenv("GAN_LAB_INJECT_NAN_AT_STEP", "30")
    monkeypatch.setattr(sys, "argv", ["train.py", "--variant", "dcgan", "--data", str(prepared_digits),
                                      "--out", str(out), "--plots", str(plots), "--storage", str(storage),
                                      "--params", str(params)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "stages" / "train.py"), run_name="__main__")

    assert exit_.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == ["error: dcgan diverged: non-finite loss/D = nan at step 30 (epoch 2)"]
    assert [p.name for p in out.iterdir()] == ["generator.pt"]
    assert (out / "generator.pt").read_bytes() == b"the model of an earlier, good run"
    assert not plots.exists()

    client = MlflowClient(uri)
    run, = client.search_runs([client.get_experiment_by_name("gan-lab").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["divergence"] == "non-finite loss/D = nan at step 30 (epoch 2)"
    assert not client.search_logged_models([run.info.experiment_id])  # no generator was logged
    assert [m.value for m in client.get_metric_history(run.info.run_id, "health/collapsed")] == [0.0]  # epoch 1

    checkpoints = sorted(p for p in (storage / "dcgan").glob("checkpoint_*") if p.is_dir())
    assert len(checkpoints) == 1, checkpoints  # epoch 1's; the stop reported none
    state, _, _ = load_checkpoint(checkpoints[0])
    assert state["epoch"] == 1 and state["step"] == 22
    assert all(torch.isfinite(t).all() for net in state["nets"].values() for t in net.values()
               if t.is_floating_point())


def test_a_diverging_tune_trial_is_stopped_at_once_and_ranked_last(ray_cluster, prepared_digits, tmp_path):
    from pipeline.config import EvaluatorConfig
    from pipeline.data import load_prepared
    from pipeline.evaluator import build_evaluator
    from pipeline.tune.search import tune_variant

    evaluator = tmp_path / "evaluators" / "digits"
    build_evaluator(EvaluatorConfig(epochs=1), load_prepared(prepared_digits), evaluator)
    raw = tiny_params(epochs=1)
    # Trial 0 is the variant's own lr_d (2e-4); trial 1 draws an absurd one that overflows D.
    raw["tune"] = {"dcgan": {"scheduler": "asha", "num_samples": 2, "max_epochs": 2, "grace_epochs": 2,
                             "n_samples": 100, "space": {"lr_d": "loguniform(1e29, 1e30)"}}}
    out = tmp_path / "tune" / "dcgan"
    summary = tune_variant(parse_params(raw), "dcgan", prepared_digits, evaluator, out, tmp_path / "ray", tmp_path)

    trials = pd.read_csv(out / "trials.csv").set_index("trial_id")
    default, = trials.index[trials["is_default"]]
    diverged, = trials.index[~trials["is_default"]]
    assert trials.loc[default, "status"] == "completed" and trials.loc[default, "epochs"] == 2
    assert trials.loc[diverged, "status"] == "diverged" and trials.loc[diverged, "epochs"] == 1  # stopped at once
    assert summary["best"]["trial_id"] == default
    assert json.loads((out / "best.json").read_text())["best"]["trial_id"] == default

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    children = {run.data.tags["trial_id"]: run for run in client.search_runs(
        [client.get_experiment_by_name("gan-lab").experiment_id], "tags.trial_id != ''")}
    assert children[diverged].info.status == "FAILED"
    assert children[diverged].data.tags["divergence"].startswith("non-finite ")
    assert children[diverged].data.tags["tune_status"] == "diverged"
    assert children[default].info.status == "FINISHED"
