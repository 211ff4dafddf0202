"""The cluster path keeps secrets out of Ray's job table and of written files, and refuses
checkpoint storage that the nodes of a cluster do not share."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from helpers import ROOT, tiny_params
from pipeline.artifacts import read_run_info, write_run_info
from pipeline.redact import mask_credentials
from pipeline.train.launcher import SECRET_ENV, forwarded_env
from pipeline.train.storage import cluster_storage_problems, filesystem_type


def test_mask_credentials_hides_passwords_in_uris_and_lines():
    assert mask_credentials("http://alice:s3cret@mlflow:5000") == "http://alice:***@mlflow:5000"
    assert mask_credentials("postgresql://mlflow:p@ss:w@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    line = "MLFLOW_TRACKING_URI=https://bob:tok@mlflow.internal/ and sqlite:///x/mlflow.db: unreachable"
    assert mask_credentials(line) == "MLFLOW_TRACKING_URI=https://bob:***@mlflow.internal/ and sqlite:///x/mlflow.db: unreachable"
    for unchanged in ("http://mlflow:5000", "sqlite:////tmp/a:b/mlflow.db", "http://user@host:5000", "", None):
        assert mask_credentials(unchanged) == unchanged


def test_run_json_never_holds_the_tracking_password(tmp_path):
    write_run_info(tmp_path, {"run_id": "abc", "tracking_uri": "http://alice:s3cret@mlflow:5000", "seed": 1})
    assert "s3cret" not in (tmp_path / "run.json").read_text()
    assert read_run_info(tmp_path) == {"run_id": "abc", "tracking_uri": "http://alice:***@mlflow:5000", "seed": 1}


def test_mlflow_secrets_never_travel_in_the_ray_runtime_env(monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    env = forwarded_env()
    assert set(SECRET_ENV) == {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
    assert not set(SECRET_ENV) & set(env) and "s3cret" not in json.dumps(env) and "t0ken" not in json.dumps(env)
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["MLFLOW_TRACKING_USERNAME"] == "alice"


def _mounts(tmp_path, *lines: str) -> str:
    path = tmp_path / "mounts"
    path.write_text("".join(f"{line} 0 0\n" for line in ("rootfs / ext4 rw", *lines)))
    return str(path)


def test_cluster_storage_must_be_shared_or_declared_shared(tmp_path):
    mounts = _mounts(tmp_path, "server:/export /mnt/shared nfs4 rw", "tmpfs /mnt/shared/tmp tmpfs rw")
    assert filesystem_type("/mnt/shared/ray_runs", mounts) == "nfs4"
    assert filesystem_type("/mnt/shared/tmp/x", mounts) == "tmpfs"  # the longest mount point wins
    assert filesystem_type("/mnt/sharedx", mounts) == "ext4"
    cluster = {"RAY_ADDRESS": "10.0.0.1:6379"}
    assert cluster_storage_problems(".ray_runs", {}, mounts) == []  # no cluster: the local default is right
    assert cluster_storage_problems(".ray_runs", cluster, mounts) == [
        "GAN_LAB_STORAGE is unset: checkpoints would go to .ray_runs on one node only on the Ray cluster "
        "RAY_ADDRESS=10.0.0.1:6379; set GAN_LAB_STORAGE to an s3://, gs:// or abfs:// URI or a path every node "
        "mounts (GAN_LAB_STORAGE_SHARED=1 declares a mount shared)"]
    local = {**cluster, "GAN_LAB_STORAGE": "/data/runs"}
    assert cluster_storage_problems("/data/runs", local, mounts) == [
        "GAN_LAB_STORAGE=/data/runs: a node-local path (filesystem ext4) on the Ray cluster RAY_ADDRESS=10.0.0.1:6379: "
        "a worker restarted on another node could not resume from it; set GAN_LAB_STORAGE to an s3://, gs:// or "
        "abfs:// URI or a path every node mounts (GAN_LAB_STORAGE_SHARED=1 declares a mount shared)"]
    assert cluster_storage_problems("file:///data/runs", {**local, "GAN_LAB_STORAGE": "file:///data/runs"}, mounts)
    assert cluster_storage_problems("/mnt/shared/tmp/runs", {**local, "GAN_LAB_STORAGE": "x"}, mounts)
    for fine in ("/mnt/shared/ray_runs", "s3://bucket/runs", "gs://bucket/runs"):
        assert cluster_storage_problems(fine, {**cluster, "GAN_LAB_STORAGE": fine}, mounts) == [], fine
    assert cluster_storage_problems("/data/runs", {**local, "GAN_LAB_STORAGE_SHARED": "1"}, mounts) == []
    assert cluster_storage_problems("/mnt/shared/runs", cluster, mounts) == []  # `--storage` on NFS, no variable


def _train_stage(tmp_path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """stages/train.py on tiny params in ``tmp_path`` (no prepared data: it must stop before needing it)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    return subprocess.run([sys.executable, str(ROOT / "stages/train.py"), "--variant", "dcgan", "--data", "x.npz",
                           "--out", str(tmp_path / "model"), "--plots", str(tmp_path / "p.csv"),
                           "--params", str(tmp_path / "params.yaml"), *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)


def test_train_stage_refuses_node_local_storage_on_a_cluster_before_ray(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("GAN_LAB_STORAGE", "GAN_LAB_STORAGE_SHARED")}
    env["RAY_ADDRESS"] = "10.0.0.1:6379"  # nothing listens there: a stage that tried to join would hang, not exit 2
    done = _train_stage(tmp_path, env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: GAN_LAB_STORAGE is unset: checkpoints would go to .ray_runs on one node only on the Ray cluster "
        "RAY_ADDRESS=10.0.0.1:6379; set GAN_LAB_STORAGE to an s3://, gs:// or abfs:// URI or a path every node "
        "mounts (GAN_LAB_STORAGE_SHARED=1 declares a mount shared)")
    assert not (tmp_path / ".ray_runs").exists() and not (tmp_path / "model").exists()


def test_stage_error_lines_mask_a_password_in_the_tracking_uri(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["MLFLOW_TRACKING_URI"] = "http://alice:s3cret@127.0.0.1:9"  # port 9: nothing listens
    done = _train_stage(tmp_path, env, "--storage", str(tmp_path / "ray"))
    assert done.returncode == 2 and "s3cret" not in done.stderr + done.stdout, done.stderr
    assert "MLFLOW_TRACKING_URI=http://alice:***@127.0.0.1:9: the MLflow tracking server is unreachable" in done.stderr
