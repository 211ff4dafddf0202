"""The cluster path with real processes: a two-host Ray cluster (network namespaces on this
machine), a job submitted through the Ray Jobs CLI with the repository's runtime env, a real MLflow
server, a worker process killed mid-training, and an unreachable server failing the job fast."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import tiny_params
from netns_hosts import BIN, ROOT, TwoHosts, job_copy, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

EPOCHS, STEPS_PER_EPOCH = 25, 1437 // 64  # 2 workers x 32 images: 22 global steps per epoch
# The README's entrypoint: DVC runs prepare@digits, then the training.
TRAIN = "env GAN_LAB_GIT_COMMIT=0123abc bash infra/ray/job.sh dvc repro train@dcgan"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(f"two-host cluster test: {why}")
    hosts = TwoHosts(tmp_path_factory.mktemp("cluster"))
    try:
        hosts.create_network()
        hosts.start_mlflow()  # starts while Ray comes up
        hosts.start_ray(node_env=hosts.mlflow_credentials())  # the nodes hold the secret, not the jobs
        hosts.wait_mlflow()
        yield hosts
    finally:
        hosts.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The working dir a user submits: the repository with a small 2-worker DCGAN in params.yaml."""
    copy = job_copy(tmp_path_factory.mktemp("project"))
    params = tiny_params(epochs=EPOCHS, num_workers=2, cpus_per_worker=1, g_width=32, d_width=32, max_failures=1)
    params["tune"] = {}
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    (copy / "dvc.lock").unlink(missing_ok=True)
    return copy


def runtime_env(hosts: TwoHosts, **env_vars: str) -> Path:
    """infra/ray/runtime_env.yaml with this cluster's services filled in (what a user edits)."""
    env = yaml.safe_load((ROOT / "infra/ray/runtime_env.yaml").read_text())
    env["env_vars"].update(env_vars)
    path = hosts.workdir / f"runtime_env_{len(env_vars)}_{time.time_ns()}.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def submit(hosts: TwoHosts, project: Path, env_file: Path, submission_id: str) -> subprocess.Popen:
    return hosts.start_in(1, [str(BIN / "ray"), "job", "submit", "--address", hosts.dashboard,
                              "--submission-id", submission_id, "--working-dir", str(project),
                              "--runtime-env", str(env_file), "--", *TRAIN.split()],
                          f"{submission_id}.log", cwd=project)


def test_job_spans_both_hosts_survives_a_killed_worker_and_logs_one_mlflow_run(hosts, project):
    storage = hosts.workdir / "shared" / "ray_runs"  # the shared storage every node reaches
    # No credentials in the runtime env: the workers and the job's driver inherit them from their node.
    env_file = runtime_env(hosts, MLFLOW_TRACKING_URI=hosts.mlflow_uri, GAN_LAB_STORAGE=str(storage),
                           GAN_LAB_STORAGE_SHARED="1")  # one machine's disk: shared by both "hosts"
    started = time.time()
    job = submit(hosts, project, env_file, "train-dcgan")

    # Kill host 2's Train worker once Ray Train has registered a checkpoint in the shared storage
    # (its snapshot file lists the checkpoints a restart may resume from).
    deadline = time.time() + 180
    while not (storage / "dcgan" / "checkpoint_manager_snapshot.json").is_file():
        assert job.poll() is None, (hosts.workdir / "train-dcgan.log").read_text()[-4000:]
        assert time.time() < deadline, "no checkpoint within 180 s"
        time.sleep(0.1)
    victims = [pid for pid, title in hosts.process_titles(2).items() if title.startswith("ray::RayTrainWorker")]
    assert len(victims) == 1, hosts.process_titles(2)
    subprocess.run(["kill", "-9", str(victims[0])], check=True)

    assert job.wait(timeout=300) == 0, (hosts.workdir / "train-dcgan.log").read_text()[-6000:]
    took = time.time() - started
    log = (hosts.workdir / "train-dcgan.log").read_text()
    assert "resuming from" in log, log[-6000:]  # the restarted workers went on from the last checkpoint
    print(f"submitted job took {took:.1f} s")

    # The final checkpoint, in the shared storage: every epoch and step done once.
    from pipeline.train.checkpoint import load_checkpoint

    latest = sorted(p for p in (storage / "dcgan").glob("checkpoint_*") if p.is_dir())[-1]
    state, _, _ = load_checkpoint(latest)
    assert (state["epoch"], state["step"]) == (EPOCHS, EPOCHS * STEPS_PER_EPOCH)

    # One MLflow run on the server, placed on both hosts, with the whole step range and the model.
    found = hosts.python_in(1, f"""
import json
from mlflow.tracking import MlflowClient
client = MlflowClient({hosts.mlflow_uri!r})
experiment = client.get_experiment_by_name("gan-lab")
runs = client.search_runs([experiment.experiment_id])
run = runs[0]
steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/D")]
models = client.search_logged_models([experiment.experiment_id])
print(json.dumps({{"runs": len(runs), "workers": json.loads(run.data.tags["ray.workers"]),
                  "git_commit": run.data.tags["git_commit"],
                  "last_step": max(steps), "status": run.info.status, "models": len(models)}}))
""", env=hosts.mlflow_credentials())
    assert found["runs"] == 1 and found["git_commit"] == "0123abc", found
    nodes = {worker["node_id"] for worker in found["workers"]}
    assert len(nodes) == 2, found["workers"]  # rank 0 and rank 1 on different Ray nodes
    assert {worker["node_ip"] for worker in found["workers"]} == {hosts.host_ip[1], hosts.host_ip[2]}
    assert found["last_step"] == EPOCHS * STEPS_PER_EPOCH
    assert found["models"] >= 1  # the generator, logged through the server's artifact proxy

    # Ray's job table (what the dashboard shows anyone with the token) holds no MLflow password.
    jobs = job_table(hosts)
    assert "train-dcgan" in [job.get("submission_id") for job in jobs]
    assert hosts.mlflow_password not in json.dumps(jobs)


def job_table(hosts: TwoHosts) -> list[dict]:
    """Ray's job table as the dashboard serves it (``/api/jobs/``), read with the cluster's token."""
    return hosts.python_in(1, f"""
import json, os, urllib.request
request = urllib.request.Request({hosts.dashboard + "/api/jobs/"!r},
                                 headers={{"Authorization": "Bearer " + os.environ["RAY_AUTH_TOKEN"]}})
print(json.dumps(json.loads(urllib.request.urlopen(request, timeout=30).read())))
""")


# A client without the token (no auth mode: no header, HTTP 401) and one with a wrong token (HTTP 403).
INTRUDERS = {"no-token": ({"RAY_AUTH_MODE": "disabled"}, "Authentication required"),
             "wrong-token": ({"RAY_AUTH_TOKEN": "not-the-token"}, "Authentication failed")}


@pytest.mark.parametrize("intruder", list(INTRUDERS))
def test_a_job_submitted_without_the_cluster_s_token_is_refused(hosts, tmp_path, intruder):
    client_env, refusal = INTRUDERS[intruder]
    marker = tmp_path / "ran"
    done = hosts.run_in(1, [str(BIN / "ray"), "job", "submit", "--address", hosts.dashboard, "--submission-id",
                            f"intruder-{intruder}", "--", "touch", str(marker)], 60,
                        env={**client_env, "HOME": str(tmp_path)})  # (no ~/.ray/auth_token to fall back on)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and refusal in said, said[-3000:]
    assert not marker.exists()
    # It never reached the job table (listed with the token).
    assert f"intruder-{intruder}" not in [job.get("submission_id") for job in job_table(hosts)]


def test_unreachable_mlflow_server_fails_the_job_before_training(hosts, project):
    storage = hosts.workdir / "shared-unreachable"
    nowhere = f"http://{hosts.host_ip[1]}:5999"  # nothing listens there
    env_file = runtime_env(hosts, MLFLOW_TRACKING_URI=nowhere, GAN_LAB_STORAGE=str(storage), GAN_LAB_STORAGE_SHARED="1")
    started = time.time()
    job = submit(hosts, project, env_file, "unreachable")
    assert job.wait(timeout=120) != 0
    log = (hosts.workdir / "unreachable.log").read_text()
    assert f"MLFLOW_TRACKING_URI={nowhere}: the MLflow tracking server is unreachable" in log
    assert time.time() - started < 60
    assert not storage.exists()  # nothing trained, no checkpoint, no run marker


def test_refused_mlflow_credentials_fail_the_job_before_training(hosts, project):
    storage = hosts.workdir / "shared-refused"
    # (a wrong password given to this job only, overriding the node's: never do this with a real one)
    env_file = runtime_env(hosts, MLFLOW_TRACKING_URI=hosts.mlflow_uri, GAN_LAB_STORAGE=str(storage),
                           GAN_LAB_STORAGE_SHARED="1", **hosts.mlflow_credentials(password="not-the-password"))
    job = submit(hosts, project, env_file, "refused")
    assert job.wait(timeout=120) != 0
    log = (hosts.workdir / "refused.log").read_text()
    assert "the MLflow tracking server answered HTTP 401: the credentials were refused" in log
    assert not storage.exists()
