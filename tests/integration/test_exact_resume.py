"""Exact resume after three real interruptions of a training (issue 23, docs/reliability.md):

- ``kill -9`` of the Ray Train worker mid-epoch: Ray Train restarts it from the last checkpoint;
- ``SIGINT`` to ``dvc repro`` during ``train@dcgan`` (a terminal's Ctrl-C reaches the whole process
  group), then ``dvc repro`` again;
- ``kill -9`` of the stage's driver process (``stages/train.py``), then ``dvc repro`` again.

Each time the final networks equal, bit for bit, those of an uninterrupted in-process run with the
same seed on CPU, and the one MLflow run of the stage holds every step's metrics exactly once.
The stages join the test session's Ray (``RAY_ADDRESS``), as on a cluster: a killed driver's workers
are ended by Ray with its job. About 2.5 minutes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from helpers import copy_tracked_files, tiny_params
from pipeline import tracking
from pipeline.artifacts import read_generator, read_json
from pipeline.config import parse_params
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession

pytestmark = pytest.mark.integration

# 89 steps of 16 images per epoch (about a second here), so a kill lands inside an epoch.
PARAMS = {**tiny_params(epochs=4, batch_size=16, cpus_per_worker=1, max_failures=1), "tune": {}}
STEPS = 4 * (1437 // 16)


def uninterrupted(data_path: Path, work: Path) -> dict:
    """The networks of an in-process run of the same variant and seed, never interrupted, logging to
    an MLflow run as the stage does (the sample grid of each report re-estimates G_ema's BatchNorm
    statistics, which are part of its state)."""
    cfg = parse_params(PARAMS).variant("dcgan")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    run_id = tracking.start_run(uri, tracking.ensure_experiment(uri, work), "dcgan", {}, {})
    session = LocalSession(work / "checkpoints")
    job = TrainJob("dcgan", cfg.model_dump(mode="json"), str(data_path), uri, run_id)
    assert train_loop(job.to_dict(), session) is None
    state, _, _ = load_checkpoint(session.latest_checkpoint())
    return state["nets"]


def final_nets(run_dir: Path) -> tuple[dict, int]:
    """The networks and step of the newest Ray Train checkpoint of a run."""
    state, _, _ = load_checkpoint(max(p for p in run_dir.glob("checkpoint_*") if p.is_dir()))
    return state["nets"], int(state["step"])


def assert_bitwise_equal(nets: dict, expected: dict) -> None:
    assert nets.keys() == expected.keys()
    for name, state in expected.items():
        differing = [k for k, v in state.items() if not torch.equal(nets[name][k], v)]
        assert not differing, f"{name}: {differing[:5]} differ from the uninterrupted run"


def assert_each_step_logged_once(uri: str) -> None:
    """One run; every per-step metric at steps 1..STEPS once; report-time metrics never twice."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_name for r in runs] == ["dcgan"], [r.info.run_name for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key}: duplicated steps"
        if key.startswith("loss/"):
            assert sorted(steps) == list(range(1, STEPS + 1)), f"{key}: {len(steps)} steps, gaps or extras"


def pids_matching(fragment: str) -> set[int]:
    """Processes whose command line (or Ray's process title) contains ``fragment``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if fragment in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.add(int(entry.name))
            except OSError:
                continue  # ended meanwhile
    return found


def parent_pid(pid: int) -> int | None:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return None  # ended meanwhile
    return int(re.search(r"^PPid:\s*(\d+)", status, re.MULTILINE).group(1))


def kill_new_process(fragment: str, before: set[int], sig: int) -> int:
    """Send ``sig`` to the one process matching ``fragment`` that was not there ``before``. Where the
    command runs under a shell that does not exec it (``sh -c "python stages/train.py ..."``), both
    match: the shell, parent of the other, is left out."""
    targets = pids_matching(fragment) - before - {os.getpid()}
    targets -= {parent_pid(pid) for pid in targets}
    assert len(targets) == 1, f"expected one new {fragment!r} process, found {targets}"
    pid = targets.pop()
    os.kill(pid, sig)
    return pid


class SignalInEpochTwo(threading.Thread):
    """Once ``run_dir`` holds a checkpoint (epoch 1 reported), waits ``delay`` s (inside epoch 2),
    notes the newest checkpoint's step and calls ``send`` (which signals a process, returns its pid)."""

    def __init__(self, run_dir: Path, send: Callable[[], int], delay: float = 0.4):
        super().__init__(daemon=True)
        self.run_dir, self.send, self.delay = run_dir, send, delay
        self.signalled: int | None = None
        self.step_at_signal: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(p.is_dir() for p in self.run_dir.glob("checkpoint_*")):
            time.sleep(0.05)
        time.sleep(self.delay)
        self.step_at_signal = final_nets(self.run_dir)[1]
        self.signalled = self.send()


def test_kill_9_of_the_ray_train_worker_mid_epoch_resumes_exactly(ray_cluster, prepared_digits, tmp_path):
    from pipeline.train.driver import train_variant

    expected = uninterrupted(prepared_digits, tmp_path / "plain")
    before = pids_matching("RayTrainWorker")
    killer = SignalInEpochTwo(tmp_path / "ray" / "dcgan", lambda: kill_new_process("RayTrainWorker", before,
                                                                                   signal.SIGKILL))
    killer.start()
    train_variant(parse_params(PARAMS), "dcgan", prepared_digits, tmp_path / "models" / "dcgan",
                  tmp_path / "dcgan.csv", tmp_path / "ray", tmp_path)
    killer.join(timeout=5)
    assert killer.signalled is not None and killer.step_at_signal < STEPS  # the kill came before the end

    nets, step = final_nets(tmp_path / "ray" / "dcgan")
    assert step == STEPS
    assert_bitwise_equal(nets, expected)
    assert_each_step_logged_once(f"sqlite:///{tmp_path}/mlflow.db")
    assert len((tmp_path / "dcgan.csv").read_text().splitlines()) == 1 + STEPS  # the plots have every step


@pytest.fixture()
def repo(tmp_path, ray_cluster) -> tuple[Path, dict]:
    """A copy of the repository's tracked files with PARAMS (digits, one DCGAN), committed, and the
    environment for its stages: the session's Ray and a store of its own."""
    target = copy_tracked_files(tmp_path / "repo")
    (target / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "true",
           "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, "GAN_LAB_STORAGE_SHARED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for cmd in (["git", "init", "-q"], git + ["add", "-A"], git + ["commit", "-qm", "tiny"]):
        subprocess.run(cmd, cwd=target, check=True, env=env)
    return target, env


def interrupted_then_repeated(repo: Path, env: dict, interrupt: Callable[[int], int]) -> None:
    """``dvc repro train@dcgan`` interrupted in epoch 2 by ``interrupt(dvc's pid)``, then
    ``dvc repro train@dcgan`` again, which must resume the interrupted run and finish."""
    command = ["dvc", "repro", "train@dcgan"]
    first = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        signaller = SignalInEpochTwo(repo / ".ray_runs" / "dcgan", lambda: interrupt(first.pid))
        signaller.start()
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    signaller.join(timeout=5)
    assert signaller.signalled is not None and signaller.step_at_signal < STEPS, output[-2000:]
    assert first.returncode != 0, f"the interrupted dvc repro succeeded:\n{output[-2000:]}"
    second = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, f"{second.stdout[-3000:]}\n{second.stderr[-3000:]}"
    assert "resuming" in second.stdout + second.stderr, "the second run did not resume the first one's run"


def assert_stage_matches_uninterrupted(repo: Path, tmp_path: Path) -> None:
    expected = uninterrupted(repo / "data" / "prepared" / "digits.npz", tmp_path / "plain")
    nets, step = final_nets(repo / ".ray_runs" / "dcgan")
    assert step == STEPS
    assert_bitwise_equal(nets, expected)
    saved, _, _ = read_generator(repo / "models" / "dcgan")
    assert saved["net"] == "G_ema" and all(torch.equal(v, expected["G_ema"][k]) for k, v in saved["state_dict"].items())
    assert_each_step_logged_once(f"sqlite:///{repo}/mlflow.db")
    assert read_json(repo / "models" / "dcgan" / "run.json")["steps"] == STEPS


def test_sigint_to_dvc_repro_then_dvc_repro_again_resumes_exactly(repo, tmp_path):
    path, env = repo

    def ctrl_c(dvc_pid: int) -> int:  # a terminal's Ctrl-C: every process of the foreground group
        os.killpg(dvc_pid, signal.SIGINT)
        return dvc_pid

    interrupted_then_repeated(path, env, ctrl_c)
    assert_stage_matches_uninterrupted(path, tmp_path)


def test_kill_9_of_the_stage_driver_then_dvc_repro_again_resumes_exactly(repo, tmp_path):
    path, env = repo
    before = pids_matching("stages/train.py")
    interrupted_then_repeated(path, env, lambda _: kill_new_process("stages/train.py", before, signal.SIGKILL))
    assert_stage_matches_uninterrupted(path, tmp_path)
