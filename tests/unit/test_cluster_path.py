"""What the cluster path adds, piece by piece: GPU/AMP params, the MLflow server preflight, the
storage location, the environment forwarded to workers and data sent through the object store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from helpers import ROOT, tiny_params
from pipeline import tracking
from pipeline.config import ConfigError, parse_params
from pipeline.data import load_prepared
from pipeline.families import family_for
from pipeline.families.base import StepEnv, autocast_for
from pipeline.train import launcher
from pipeline.train.driver import check_runtime
from pipeline.train.storage import RunStorage
from pipeline.train.sharding import training_batches


def test_bf16_needs_gpu_workers_and_use_gpu_needs_a_gpu_here_or_in_the_cluster(monkeypatch):
    with pytest.raises(ConfigError) as info:
        parse_params(tiny_params(precision="bf16"))
    assert info.value.problems == ["params.yaml: variants.dcgan.precision = 'bf16': bf16 autocast needs use_gpu: "
                                   "true (on CPU it is slower than fp32); allowed on CPU: fp32"]
    with pytest.raises(ConfigError, match="precision = 'fp16'"):
        parse_params(tiny_params(precision="fp16"))
    params = parse_params(tiny_params(use_gpu=True, precision="bf16"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="use_gpu = True: no CUDA GPU on this machine and no RAY_ADDRESS"):
        check_runtime(params, "dcgan")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a cluster may have the GPUs: asked, not assumed
    monkeypatch.setattr(launcher, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 2.0})
    check_runtime(params, "dcgan")
    monkeypatch.setattr(launcher, "cluster_resources", lambda: {"CPU": 8.0})
    with pytest.raises(ConfigError) as info:
        check_runtime(params, "dcgan")
    assert info.value.problems == [
        "params.yaml: variants.dcgan.use_gpu = True: 1 worker(s) need a GPU each, the Ray cluster at 10.0.0.1:6379 "
        "has 0 (CPU: 8); set use_gpu: false (and precision: fp32), add GPU nodes, or set GAN_LAB_WAIT_FOR_GPU=1 if "
        "its autoscaler starts GPU nodes on demand"]
    two_workers = parse_params(tiny_params(use_gpu=True, num_workers=2))
    monkeypatch.setattr(launcher, "cluster_resources", lambda: {"CPU": 8.0, "GPU": 1.0})
    with pytest.raises(ConfigError, match="2 worker.s. need a GPU each, the Ray cluster at 10.0.0.1:6379 has 1 "):
        check_runtime(two_workers, "dcgan")

    def unreachable():
        raise ConnectionError("could not connect to 10.0.0.1:6379\nmore detail")
    monkeypatch.setattr(launcher, "cluster_resources", unreachable)
    with pytest.raises(ConfigError) as info:
        check_runtime(params, "dcgan")
    assert info.value.problems == ["RAY_ADDRESS=10.0.0.1:6379: cannot join the Ray cluster (ConnectionError: could "
                                   "not connect to 10.0.0.1:6379)"]
    monkeypatch.setenv("GAN_LAB_WAIT_FOR_GPU", "1")  # an autoscaling cluster: not asked
    monkeypatch.setattr(launcher, "cluster_resources", lambda: pytest.fail("the cluster was queried"))
    check_runtime(params, "dcgan")


def test_a_bf16_autocast_step_trains_and_keeps_fp32_weights(prepared_digits):
    cfg = parse_params(tiny_params(use_gpu=True, precision="bf16")).variant("dcgan")
    family, data = family_for(cfg), load_prepared(prepared_digits)
    torch.manual_seed(0)
    nets = family.build(data.spec)
    opts = family.optimizers(nets)
    env = StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda params: None,
                  autocast=autocast_for("bf16", torch.device("cpu")))
    batch = next(iter(training_batches(data, 64, 0, 1, 0).epoch(0)))
    with env.autocast():
        assert nets["G"](torch.randn(2, cfg.z_dim)).dtype == torch.bfloat16  # the forward pass is bf16
    scalars = family.train_step(nets, opts, batch, env)
    assert all(np.isfinite(v) for v in scalars.values())
    assert all(p.dtype == torch.float32 for p in nets["G"].parameters())
    assert autocast_for("fp32", torch.device("cpu"))().__enter__() is None  # fp32: no autocast at all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracking_preflight_names_an_unreachable_server_and_passes_local_stores(tmp_path):
    assert tracking.server_problem(f"sqlite:///{tmp_path}/mlflow.db") is None
    uri = f"http://127.0.0.1:{_free_port()}"
    assert tracking.server_problem(uri, timeout_s=2) == (
        f"MLFLOW_TRACKING_URI={uri}: the MLflow tracking server is unreachable (ConnectionError); start it "
        "(infra/mlflow/serve.sh) or fix the address")


@pytest.mark.slow
def test_train_stage_stops_before_ray_when_the_server_is_unreachable(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    uri = f"http://127.0.0.1:{_free_port()}"
    done = subprocess.run([sys.executable, str(ROOT / "stages/train.py"), "--variant", "dcgan", "--data", "x.npz",
                           "--out", str(tmp_path / "model"), "--plots", str(tmp_path / "p.csv"),
                           "--storage", str(tmp_path / "ray"), "--params", str(tmp_path / "params.yaml")],
                          capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: MLFLOW_TRACKING_URI={uri}: the MLflow tracking server is unreachable "
                                   "(ConnectionError); start it (infra/mlflow/serve.sh) or fix the address")
    assert not (tmp_path / "ray").exists() and not (tmp_path / "model").exists()


@pytest.mark.parametrize("as_uri", [False, True])
def test_run_storage_keeps_markers_beside_ray_runs_on_a_path_or_a_uri(tmp_path, as_uri):
    location = (tmp_path / "runs").as_uri() if as_uri else tmp_path / "runs"
    storage = RunStorage(location)
    assert storage.read_marker("dcgan") is None
    storage.write_marker("dcgan", {"run_id": "abc", "config_hash": "h"})
    assert storage.read_marker("dcgan") == {"run_id": "abc", "config_hash": "h"}
    assert json.loads((tmp_path / "runs" / "dcgan.run.json").read_text())["run_id"] == "abc"
    (tmp_path / "runs" / "dcgan" / "checkpoint_1").mkdir(parents=True)
    storage.remove_run("dcgan")
    assert not (tmp_path / "runs" / "dcgan").exists() and storage.read_marker("dcgan") is not None
    assert storage.run_dir("dcgan").endswith("/runs/dcgan")


def test_workers_get_the_driver_s_services_unless_the_job_sets_them(monkeypatch):
    from pipeline.train.launcher import forwarded_env

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("GAN_LAB_STORAGE", "s3://bucket/runs")
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    env = forwarded_env()
    assert {"MLFLOW_TRACKING_URI", "GAN_LAB_STORAGE"} <= set(env)
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # a secret stays out of Ray's job table (the nodes hold it)
    # Under `ray job submit` Ray refuses a variable that both the job and the driver define.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(
        {"runtime_env": {"env_vars": {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}}}))
    assert "MLFLOW_TRACKING_URI" not in forwarded_env() and "GAN_LAB_STORAGE" in forwarded_env()


@pytest.mark.integration  # starts the session's Ray
def test_a_node_without_the_data_file_gets_it_from_the_object_store(ray_cluster, prepared_digits, tmp_path):
    from pipeline.train.launcher import DATA_KEY, ship_data, with_local_data

    for suffix in (".npz", ".json"):
        shutil.copy(prepared_digits.with_suffix(suffix), tmp_path / f"digits{suffix}")
    job = ship_data({"data_path": str(tmp_path / "digits.npz"), "variant_name": "dcgan"})
    assert with_local_data(job) == {"data_path": str(tmp_path / "digits.npz"), "variant_name": "dcgan", DATA_KEY: None}
    (tmp_path / "digits.npz").unlink()  # as on a node that does not share the driver's disk
    local = with_local_data(job)
    assert local[DATA_KEY] is None and local["data_path"] != str(tmp_path / "digits.npz")
    again, original = load_prepared(local["data_path"]), load_prepared(prepared_digits)
    assert again.sha256 == original.sha256 and np.array_equal(again.x_train, original.x_train)


def test_tune_stage_refuses_use_gpu_without_a_gpu_before_ray_starts(tmp_path):
    raw = tiny_params(use_gpu=True)
    raw["tune"] = {"dcgan": {"max_epochs": 2, "space": {"lr_g": "loguniform(1e-4, 1e-2)"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    for path in (tmp_path / "prepared" / "digits.npz", tmp_path / "evaluators" / "digits" / "meta.json"):
        path.parent.mkdir(parents=True)
        path.touch()  # the stage only checks that they exist before it refuses
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(CUDA_VISIBLE_DEVICES="", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "tune.py"), "--variant", "dcgan", "--prepared",
                             "prepared", "--evaluators", "evaluators", "--out", "tune/dcgan", "--storage", "ray"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: params.yaml: variants.dcgan.use_gpu = True: no CUDA GPU on this machine "
                                     "and no RAY_ADDRESS cluster to run on; set use_gpu: false (and precision: fp32)")
    assert not (tmp_path / "tune").exists() and not (tmp_path / "ray").exists()
