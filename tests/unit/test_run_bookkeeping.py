"""Which MLflow run (and Ray storage) a training stage uses: resume only an interrupted run."""

import json

from mlflow.tracking import MlflowClient

from helpers import tiny_params
from pipeline.config import parse_params
from pipeline.train.driver import open_run


def test_interrupted_run_is_resumed_finished_or_changed_runs_start_fresh(tmp_path):
    storage = tmp_path / "ray"
    params = parse_params(tiny_params())
    first = open_run(tmp_path, storage, "dcgan", params.variant("dcgan"), "sha")
    (storage / "dcgan").mkdir()  # Ray's checkpoints of the interrupted run
    assert open_run(tmp_path, storage, "dcgan", params.variant("dcgan"), "sha") == first
    assert (storage / "dcgan").exists()

    marker = storage / "dcgan.run.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "finished": True}))
    after_finish = open_run(tmp_path, storage, "dcgan", params.variant("dcgan"), "sha")
    assert after_finish != first and not (storage / "dcgan").exists()

    changed = open_run(tmp_path, storage, "dcgan", parse_params(tiny_params(lr_g=1e-3)).variant("dcgan"), "sha")
    assert changed != after_finish

    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(changed)
    assert run.data.params["lr_g"] == "0.001" and run.data.tags["dataset_sha256"] == "sha"
    assert len(run.data.tags["params_hash"]) == 16
