"""The recorded environment: its content, and that MLflow runs and checkpoints carry it."""

from __future__ import annotations

import json

import torch
from mlflow.tracking import MlflowClient

from helpers import tiny_points_params
from pipeline import tracking
from pipeline.config import parse_params
from pipeline.environment import LIBRARIES, NUMERIC_FLAGS, cpu_info, describe_environment, environment_tags
from pipeline.train.checkpoint import read_environment
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession

KEYS = {"python", "platform", "libraries", "cpu", "torch", "env", "device", "cuda"}


def test_environment_has_every_key_is_json_and_reads_the_live_thread_count():
    env = describe_environment()
    assert set(env) == KEYS and set(env["libraries"]) == set(LIBRARIES)
    assert env["libraries"]["torch"] == torch.__version__ and env["device"] == "cpu"
    assert set(env["cpu"]) == {"model", "flags", "capability", "logical_cores"} and env["cpu"]["model"]
    assert set(env["cpu"]["flags"]) <= set(NUMERIC_FLAGS)
    assert env["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert json.loads(json.dumps(env)) == env  # JSON-serialisable as it is (no tuples, no objects)
    assert env["torch"]["num_threads"] == torch.get_num_threads()
    assert env["torch"]["num_interop_threads"] == torch.get_num_interop_threads()
    before = torch.get_num_threads()
    try:  # a worker sets its threads after import: the record must say what computed, not the default
        torch.set_num_threads(1)
        assert describe_environment("cuda:0")["torch"]["num_threads"] == 1
        assert describe_environment("cuda:0")["device"] == "cuda:0"
    finally:
        torch.set_num_threads(before)
    assert describe_environment() == env  # deterministic on one machine


def test_cpu_flags_are_the_numeric_subset_for_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu vme sse4_2 avx2 avx512f "
                   "avx512_bf16 amx_tile hypervisor\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t: avx\n")
    assert cpu_info(x86) == ("Some Xeon", ["sse4_2", "avx2", "avx512f", "avx512_bf16", "amx_tile"])
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm sve bf16 i8mm\nCPU part\t: 0xd40\n")
    model, flags = cpu_info(arm)
    assert model and flags == ["asimd", "sve", "bf16", "i8mm"]
    assert cpu_info(tmp_path / "missing")[1] == []


def test_tags_are_flat_strings():
    tags = environment_tags(describe_environment())
    assert tags["env.libraries.torch"] == torch.__version__
    assert tags["env.torch.num_threads"] == str(torch.get_num_threads())
    assert all(k.startswith("env.") and isinstance(v, str) and len(v) < 500 for k, v in tags.items())


def test_runs_carry_the_environment_and_the_worker_adds_its_own(tmp_path, prepared_ring8):
    """A run created through pipeline.tracking has env.* tags and environment.json; the training
    loop (rank 0, in-process here) adds environment_worker.json, env.worker.* tags where it differs
    (its thread count), and writes its environment into every checkpoint."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = parse_params(tiny_points_params()).variant("gan_ns").model_copy(update={"epochs": 1, "cpus_per_worker": 1})
    run_id = tracking.start_run(uri, tracking.ensure_experiment(uri, tmp_path), "gan_ns", {"lr_g": 1e-3},
                                {"variant": "gan_ns"})
    client = MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    assert tags["variant"] == "gan_ns" and tags["env.python"] == describe_environment()["python"]
    # The experiment opens on its runs in MLflow 3's UI, not on the GenAI overview.
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert {k: v for k, v in tags.items() if k.startswith("env.")} == environment_tags(describe_environment())
    assert _artifact(client, run_id, "environment.json", tmp_path) == describe_environment()

    before = torch.get_num_threads()
    try:  # the loop sets this process's threads to the worker's cpus_per_worker (1)
        session = LocalSession(tmp_path / "ckpt")
        train_loop(TrainJob("gan_ns", cfg.model_dump(mode="json"), str(prepared_ring8), uri, run_id).to_dict(), session)
    finally:
        torch.set_num_threads(before)
    worker = _artifact(client, run_id, "environment_worker.json", tmp_path)
    assert worker["torch"]["num_threads"] == 1 and worker["device"] == "cpu"
    assert read_environment(session.latest_checkpoint()) == worker
    worker_tags = {k: v for k, v in client.get_run(run_id).data.tags.items() if k.startswith("env.worker.")}
    if tags["env.torch.num_threads"] != "1":  # (on a one-core machine nothing differs)
        assert worker_tags["env.worker.torch.num_threads"] == "1"
    assert "env.worker.libraries.torch" not in worker_tags  # same machine: only what differs is tagged


def _artifact(client: MlflowClient, run_id: str, name: str, tmp_path) -> dict:
    return json.loads(open(client.download_artifacts(run_id, name, str(tmp_path))).read())
