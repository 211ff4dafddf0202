"""Ray Tune for real: ASHA trials on Ray Train, PBT with exploits, and an interrupted job restored.

Real local Ray (the session's, or the stage's own in a subprocess), real SQLite MLflow stores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from helpers import ROOT, tiny_params, tiny_points_params
from pipeline.config import EvaluatorConfig, parse_params
from pipeline.data import load_prepared
from pipeline.evaluator import build_evaluator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evaluators(prepared_digits, prepared_ring8, tmp_path_factory) -> Path:
    """evaluators/digits (a classifier trained for 3 epochs) and evaluators/ring8 (the known modes)."""
    root = tmp_path_factory.mktemp("evaluators")
    build_evaluator(EvaluatorConfig(epochs=3), load_prepared(prepared_digits), root / "digits")
    build_evaluator(EvaluatorConfig(), load_prepared(prepared_ring8), root / "ring8")
    return root


def _runs(tmp_path: Path, parent_name: str):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("gan-lab")
    parents = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{parent_name}'")
    assert len(parents) == 1, [p.info.run_name for p in parents]
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    return client, parents[0], children


def test_asha_trials_run_on_ray_train_and_are_tracked(ray_cluster, prepared_digits, evaluators, tmp_path):
    from pipeline.tune.search import tune_variant

    raw = tiny_params(epochs=1)
    raw["tune"] = {"dcgan": {"scheduler": "asha", "num_samples": 3, "max_epochs": 3, "grace_epochs": 1,
                             "reduction_factor": 2, "n_samples": 100,
                             "space": {"lr_g": "loguniform(1e-4, 3e-3)", "beta1": "uniform(0.0, 0.9)"}}}
    out = tmp_path / "tune" / "dcgan"
    summary = tune_variant(parse_params(raw), "dcgan", prepared_digits, evaluators / "digits", out,
                           tmp_path / "ray", tmp_path)

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) <= {"completed", "stopped_early"}
    assert trials["epochs"].between(1, 3).all() and trials["objective"].notna().all()
    assert trials["is_default"].tolist() == [True, False, False]
    assert trials.loc[0, "lr_g"] == 2e-4 and trials.loc[0, "beta1"] == 0.5  # the variant's own values
    best = json.loads((out / "best.json").read_text())
    assert best == json.loads(json.dumps(summary)) and best["objective"]["name"] == "kid"
    assert best["best"]["objective"] == trials["objective"].min() and best["best"]["objective_std"] > 0
    assert best["trial_epochs"] == trials["epochs"].sum() <= best["full_budget_epochs"] == 9

    client, parent, children = _runs(tmp_path, "tune-dcgan")
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial_id"] == best["best"]["trial_id"]
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(trials["trial_id"])
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["tune_status"] in ("completed", "stopped_early")
        assert "lr_g" in child.data.params and len(client.get_metric_history(child.info.run_id, "objective")) >= 1
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"best.json", "trials.csv",
                                                                          "environment.json"}


def test_pbt_exploits_the_better_trials_checkpoint(ray_cluster, prepared_ring8, evaluators, tmp_path):
    from pipeline.tune.search import tune_variant

    raw = tiny_points_params()
    raw["tune"] = {"gan_ns": {"scheduler": "pbt", "num_samples": 3, "max_epochs": 4, "perturbation_epochs": 1,
                              "quantile_fraction": 0.5, "n_samples": 500,
                              "space": {"lr_g": "loguniform(1e-4, 1e-2)", "lr_d": "loguniform(1e-4, 1e-2)"}}}
    out = tmp_path / "tune" / "gan_ns"
    best = tune_variant(parse_params(raw), "gan_ns", prepared_ring8, evaluators / "ring8", out, tmp_path / "ray",
                        tmp_path)

    assert best["objective"] == {"name": "modes_x_quality", "mode": "max", "n_samples": 500}
    assert len(best["exploits"]) >= 1, "no PBT exploit happened"
    for event in best["exploits"]:  # explored values stay inside the declared ranges
        assert all(1e-4 <= event["new_config"][k] <= 1e-2 for k in ("lr_g", "lr_d"))
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and (trials["epochs"] == 4).all() and trials["objective"].between(0, 1).all()
    _, parent, children = _runs(tmp_path, "tune-gan_ns")
    assert len(children) == 3 and parent.info.status == "FINISHED"


def _stage(params_path: Path, tmp_path: Path, out: Path, ray_address: str, **popen) -> subprocess.Popen:
    # The stage joins the session's Ray, as it would join a cluster. Starting its own beside it made
    # two Ray instances on the machine: Ray Train's placement-group cleaner then fails ("Found
    # multiple active Ray instances"), a finished trial's CPUs are never released and the job hangs.
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "RAY_ADDRESS": ray_address,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / "tune.py"), "--variant", "dcgan", "--prepared",
                             str(tmp_path / "prepared"), "--evaluators", str(tmp_path / "evaluators"), "--out", str(out),
                             "--storage", str(tmp_path / "ray"), "--params", str(params_path)],
                            env=env, cwd=tmp_path, start_new_session=True, **popen)


def _finished_trials(experiment: Path) -> set[str]:
    """Trials whose last result says done (Tune writes result.json lines as reports arrive)."""
    done = set()
    for result in experiment.glob("*/result.json"):
        lines = result.read_text().splitlines()
        if lines and json.loads(lines[-1]).get("done"):
            done.add(json.loads(lines[-1])["trial_id"])
    return done


def test_an_interrupted_job_resumes_without_rerunning_finished_trials(ray_cluster, prepared_digits, evaluators,
                                                                      tmp_path):
    address = ray_cluster.get_runtime_context().gcs_address
    (tmp_path / "prepared").mkdir()
    for suffix in (".npz", ".json"):
        (tmp_path / "prepared" / f"digits{suffix}").symlink_to(prepared_digits.with_suffix(suffix))
    (tmp_path / "evaluators").symlink_to(evaluators)
    raw = tiny_params(epochs=1)
    # Two trials one after the other: the first finishes before the interrupt, the second is cut short.
    raw["tune"] = {"dcgan": {"scheduler": "fifo", "num_samples": 2, "max_epochs": 2, "max_concurrent": 1,
                             "n_samples": 100, "space": {"lr_g": "loguniform(1e-4, 3e-3)"}}}
    params_path, out = tmp_path / "params.yaml", tmp_path / "tune" / "dcgan"
    params_path.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "first.log", "w")
    first = _stage(params_path, tmp_path, out, address, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while len(_finished_trials(tmp_path / "ray" / "tune-dcgan")) < 1 and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.5)
        finished_before = _finished_trials(tmp_path / "ray" / "tune-dcgan")
        assert len(finished_before) >= 1, "the job did not get a trial done in time"
        first.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves its state and stops
        first.wait(timeout=90)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        log.close()
    assert not out.exists(), "an interrupted job must not leave outputs that look complete"

    second = _stage(params_path, tmp_path, out, address, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = second.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        raise AssertionError(f"the resumed job hung:\n{second.communicate()[0][-4000:]}") from None
    assert second.returncode == 0, output[-3000:]
    assert "resuming the interrupted tuning job" in output
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "completed").all(), (
        f"{trials.to_string()}\n--- first run ---\n{(tmp_path / 'first.log').read_text()[-4000:]}"
        f"\n--- resumed run ---\n{output[-4000:]}")
    launches = dict(zip(trials["trial_id"], trials["launches"]))
    assert all(launches[t] == 1 for t in finished_before), launches  # finished trials were not run again
    _, parent, children = _runs(tmp_path, "tune-dcgan")  # the same parent run, one child per trial
    assert len(children) == 2 and parent.info.status == "FINISHED"
