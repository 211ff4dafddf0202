"""infra/: the cluster files parse and hold what they must, checked offline (Ray's own cluster
launcher schema; KubeRay's fields by key, since its CRD schema needs a Kubernetes API server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from ray.runtime_env import RuntimeEnv

from helpers import ROOT

INFRA = ROOT / "infra"


def test_cluster_launcher_config_is_valid_against_ray_s_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((INFRA / "ray/cluster.yaml").read_text()))
    validate_config(config)  # raises on any key the launcher does not know or a wrong type
    assert config["head_node_type"] in config["available_node_types"]
    commands = " ".join(config["setup_commands"])
    assert "pip install --require-hashes -r requirements.lock" in commands and "pip install --no-deps -e ." in commands


def test_job_runtime_env_is_a_ray_runtime_env_that_leaves_out_caches_and_stores():
    raw = yaml.safe_load((INFRA / "ray/runtime_env.yaml").read_text())
    env = RuntimeEnv(**raw)  # Ray's own validation of the fields
    assert {"/.venv/", "/.dvc/cache/", "/mlflow.db", "/mlartifacts/", "/.ray_runs/", "/data/prepared/",
            "/models/"} <= set(env["excludes"])
    # Anchored at the root: an unanchored models/ would also drop the code in pipeline/models/.
    assert all(p.startswith("/") for p in env["excludes"] if p.rstrip("/") in ("models", "evaluators", "samples"))
    assert env["env_vars"]["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.1"


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_manifests_have_the_fields_kuberay_needs(name):
    manifest = yaml.safe_load((INFRA / "k8s" / name).read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    spec = manifest["spec"]
    if manifest["kind"] == "RayJob":
        assert "dvc repro train@" in spec["entrypoint"] and spec["shutdownAfterJobFinishes"] is True
        RuntimeEnv(**yaml.safe_load(spec["runtimeEnvYAML"]))
        spec = spec["rayClusterSpec"]
    else:
        assert manifest["kind"] == "RayCluster"
    assert spec["rayVersion"] == ray.__version__  # the image's Ray must be the project's
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"  # the Jobs API is served by the head
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for template in [head["template"], *(g["template"] for g in groups.values())]:
        for container in _containers(template):
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests) and container["image"]
            env = {e["name"]: e for e in container["env"]}
            assert {"MLFLOW_TRACKING_URI", "GAN_LAB_STORAGE"} <= set(env)
            _assert_token_auth(env)
    assert _containers(groups["gpu"]["template"])[0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    if manifest["kind"] == "RayJob":  # the submitter pod runs `ray job submit`: it needs the token too
        _assert_token_auth({e["name"]: e for e in _containers(manifest["spec"]["submitterPodTemplate"])[0]["env"]})


def _assert_token_auth(env: dict[str, dict]) -> None:
    """Ray's token authentication on, with the token from a Secret (never a literal in the manifest)."""
    assert env["RAY_AUTH_MODE"]["value"] == "token", env
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "gan-lab-ray-auth", env


def test_cluster_launcher_nodes_start_ray_with_token_auth_and_node_credentials():
    cluster = yaml.safe_load((INFRA / "ray/cluster.yaml").read_text())
    secrets_dir = "/home/ubuntu/gan-lab-secrets"
    assert cluster["file_mounts"][secrets_dir] == "~/.gan-lab"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = " ".join(cluster[key])
        assert "export RAY_AUTH_MODE=token" in start and f"RAY_AUTH_TOKEN_PATH={secrets_dir}/ray_auth_token" in start
        assert f". {secrets_dir}/node.env" in start and start.index("node.env") < start.index("ray start")
    # and the job's runtime env (kept in Ray's job table) names no secret
    job_env = yaml.safe_load((INFRA / "ray/runtime_env.yaml").read_text())["env_vars"]
    assert not {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "RAY_AUTH_TOKEN"} & set(job_env), job_env


def test_the_image_pins_the_project_s_ray():
    dockerfile = (INFRA / "k8s/Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}-py311" in dockerfile and "torch==2.13.0" in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile


def _lock_pins() -> dict[str, Version]:
    """requirements.lock as {canonical name: pinned version}; every entry carries a sha256 hash."""
    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n\s+--hash=sha256:", text, re.MULTILINE)
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9]", text, re.MULTILINE)), "a lock entry without ==version and hash"
    return {canonicalize_name(name): Version(version) for name, version in entries}


def test_the_lock_pins_every_dependency_within_pyproject_s_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock_pins()
    for entry in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(entry)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`"
    # The CPU build of torch: PyPI's plain torch is the CUDA one, which pulls in GBs of nvidia-* packages.
    assert pins["torch"].local == "cpu" and not any(name.startswith("nvidia-") for name in pins)


def test_the_images_run_the_lock_s_ray():
    ray_pin = str(_lock_pins()["ray"])
    images = re.findall(r"rayproject/ray:([0-9.]+)-py311", (INFRA / "k8s/Dockerfile").read_text())
    cluster = yaml.safe_load((INFRA / "ray/cluster.yaml").read_text())
    images += [cluster["docker"]["image"], cluster["available_node_types"]["gpu_worker"]["docker"]["worker_image"]]
    images = [re.sub(r"^rayproject/ray:([0-9.]+)-py311.*", r"\1", image) for image in images]
    assert len(images) >= 3 and set(images) == {ray_pin}, f"Ray images {images} differ from the lock's ray=={ray_pin}"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INFRA / "mlflow/serve.sh")], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "MLFLOW_DATA_DIR": str(tmp_path), "MLFLOW_BIN": "false", **env})


def test_mlflow_server_script_refuses_unsafe_set_ups_before_starting(tmp_path):
    data = tmp_path / "data"
    # A non-loopback host without auth is refused in one line, before anything is created or started
    # (MLFLOW_BIN=true would "start" the server with exit 0: the refusal comes first).
    exposed = _serve(data, MLFLOW_HOST="0.0.0.0", MLFLOW_ALLOWED_HOSTS="mlflow.internal:5000", MLFLOW_BIN="true")
    assert exposed.returncode == 2 and exposed.stderr.splitlines() == [
        "infra/mlflow/serve.sh: MLFLOW_HOST=0.0.0.0 exposes the server without authentication: set MLFLOW_AUTH=1 "
        "(allowed without it: 127.0.0.1, localhost, ::1)"], exposed.stderr
    assert exposed.stdout == "" and not data.exists()
    no_hosts = _serve(data, MLFLOW_HOST="10.0.0.5", MLFLOW_AUTH="1", MLFLOW_BIN="true")
    assert no_hosts.returncode == 2 and len(no_hosts.stderr.splitlines()) == 1
    assert "MLFLOW_HOST=10.0.0.5 exposes the server: set MLFLOW_ALLOWED_HOSTS" in no_hosts.stderr
    no_password = _serve(tmp_path, MLFLOW_AUTH="1", MLFLOW_FLASK_SERVER_SECRET_KEY="k")
    assert no_password.returncode == 2 and "set MLFLOW_AUTH_ADMIN_PASSWORD" in no_password.stderr
    # A safe set-up reaches the server command (here `false`, so nothing starts); a database password
    # is masked in what it prints.
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    local = _serve(loose, MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:s3cret@db:5432/mlflow")
    assert "MLflow tracking server: http://127.0.0.1:5000 (backend postgresql://mlflow:***@db:5432/mlflow" in local.stderr
    assert "s3cret" not in local.stderr and local.returncode == 1
    assert loose.stat().st_mode & 0o777 == 0o700  # the data directory is this user's only, even one made before
    exposed_with_auth = _serve(data, MLFLOW_HOST="0.0.0.0", MLFLOW_ALLOWED_HOSTS="mlflow.internal:5000",
                               MLFLOW_AUTH="1", MLFLOW_AUTH_ADMIN_PASSWORD="pw", MLFLOW_FLASK_SERVER_SECRET_KEY="k")
    assert exposed_with_auth.returncode == 1 and "basic auth" in exposed_with_auth.stderr  # reached `false`
    assert data.stat().st_mode & 0o777 == 0o700 and (data / "basic_auth.ini").stat().st_mode & 0o777 == 0o600


def _job_sh(workdir: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INFRA / "ray/job.sh"), *command], cwd=workdir, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GAN_LAB_PYTHON": sys.executable})


def test_a_job_on_a_cluster_with_another_ray_is_refused_before_it_runs(tmp_path):
    lock = (ROOT / "requirements.lock").read_text()
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "requirements.lock").write_text(lock)
    same = _job_sh(upload, "touch", "ran")  # this machine's Ray is the lock's: the command runs (in its copy)
    assert same.returncode == 0 and "running 'touch ran'" in same.stderr, same.stderr
    (upload / "requirements.lock").write_text(re.sub(r"^ray==\S+", "ray==2.9.3", lock, flags=re.MULTILINE))
    other = _job_sh(upload, "bash", "-c", f"touch {tmp_path}/ran")
    assert other.returncode == 2 and other.stderr.splitlines() == [
        f"infra/ray/job.sh: this Ray cluster runs Ray {ray.__version__}, requirements.lock pins ray==2.9.3: submit to "
        "a cluster whose image or setup installs ray==2.9.3 (infra/README.md), or change the lock (make lock)"]
    assert not (tmp_path / "ran").exists()  # refused before the command
