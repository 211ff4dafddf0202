"""Runs are never left RUNNING by the train driver: an abandoned run ends KILLED when a fresh run
replaces it, and an exception out of a seed's training ends its run FAILED with the reason as the
``error`` tag (docs/reliability.md). Real SQLite MLflow stores, no mocks."""

import json

import pytest
from mlflow.tracking import MlflowClient

from helpers import tiny_params
from pipeline.config import parse_params
from pipeline.train.driver import open_run, train_variant


def test_an_abandoned_running_run_ends_killed_when_a_fresh_run_replaces_it(tmp_path):
    storage, client = tmp_path / "ray", MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    params = parse_params(tiny_params())
    first = open_run(tmp_path, storage, "dcgan", params.variant("dcgan"), "sha")  # its process then dies
    assert client.get_run(first).info.status == "RUNNING"

    changed = open_run(tmp_path, storage, "dcgan", parse_params(tiny_params(lr_g=1e-3)).variant("dcgan"), "sha")
    assert changed != first
    assert client.get_run(first).info.status == "KILLED"
    assert client.get_run(changed).info.status == "RUNNING"

    client.set_terminated(changed, "FINISHED")  # a finished run is replaced too, and keeps its status
    marker = storage / "dcgan.run.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "finished": True}))
    fresh = open_run(tmp_path, storage, "dcgan", parse_params(tiny_params(lr_g=1e-3)).variant("dcgan"), "sha")
    assert fresh != changed and client.get_run(changed).info.status == "FINISHED"


def test_an_exception_in_training_ends_the_run_failed_with_its_first_line_and_propagates(
        prepared_digits, tmp_path, monkeypatch):
    # A real fault before Ray starts: the fault-injection variable holds no step number.
    monkeypatch.setenv("GAN_LAB_INJECT_NAN_AT_STEP", "step thirty")
    params = parse_params(tiny_params())
    out = tmp_path / "models" / "dcgan"
    with pytest.raises(ValueError, match="invalid literal"):
        train_variant(params, "dcgan", prepared_digits, out, tmp_path / "plots.csv", tmp_path / "ray", tmp_path)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("gan-lab").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "ValueError: invalid literal for int() with base 10: 'step thirty'"
    assert not out.exists() and not (tmp_path / "plots.csv").exists()  # no output written


def test_an_abandoned_running_tune_parent_run_ends_killed_when_a_fresh_search_replaces_it(tmp_path):
    """A search killed mid-way left its parent run RUNNING; a changed spec starts a fresh search."""
    from pipeline.config import TuneSpec
    from pipeline.tune.search import _open_parent

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    spec = TuneSpec(max_epochs=2, space={"lr_g": "loguniform(1e-4, 1e-2)"})
    first, resumed = _open_parent(tmp_path, tmp_path / "ray", "tune-dcgan", "dcgan", spec, "digest-a", "kid")
    assert not resumed and client.get_run(first).info.status == "RUNNING"  # then its process is killed

    fresh, resumed = _open_parent(tmp_path, tmp_path / "ray", "tune-dcgan", "dcgan", spec, "digest-b", "kid")
    assert fresh != first and not resumed
    assert client.get_run(first).info.status == "KILLED"
    assert client.get_run(first).data.tags["tune_status"] == "abandoned"
    assert client.get_run(fresh).info.status == "RUNNING"
