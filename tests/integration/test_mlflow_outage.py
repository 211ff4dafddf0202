"""The MLflow tracking server goes down during training (docs/reliability.md, "Outages").

The real server (infra/mlflow/serve.sh, `mlflow server` on a free loopback port with a SQLite
backend in a temporary folder) is stopped for real, by killing its process group, while the
per-worker loop trains in-process (LocalSession): training must go on, the metrics of the outage
must reach the run once the server is back, and a server still down at the end must fail the
stage in one line with the checkpoints kept. Every server process is ended by its pid.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from helpers import ROOT, tiny_params
from pipeline import tracking
from pipeline.config import parse_params
from pipeline.train.driver import TrackingUnavailable, require_tracking
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession

pytestmark = pytest.mark.integration


class Server:
    """infra/mlflow/serve.sh on ``port`` with its data (SQLite backend, artifacts) in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port, self.proc = data_dir, port, None
        self.uri = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 40.0) -> None:
        env = {**os.environ, "MLFLOW_PORT": str(self.port), "MLFLOW_DATA_DIR": str(self.data_dir),
               "MLFLOW_WORKERS": "1", "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow")}
        with open(self.data_dir.parent / f"server-{self.port}.log", "ab") as log:  # (the child keeps its copy)
            self.proc = subprocess.Popen(["bash", str(ROOT / "infra" / "mlflow" / "serve.sh")], env=env,
                                         stdout=log, stderr=log, start_new_session=True)  # its own process group
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the MLflow server exited: see {log.name}"
            try:
                if requests.get(f"{self.uri}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the MLflow server did not answer within {timeout_s} s: see {log.name}")

    def stop(self) -> None:
        """Kill the server's process group (the script's mlflow and its workers), by its pid."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        with pytest.raises(requests.RequestException):  # really down
            requests.get(f"{self.uri}/health", timeout=1)


class HookedSession(LocalSession):
    """A LocalSession that calls ``hooks[n]()`` right after the n-th report (1-based)."""

    def __init__(self, storage_dir: Path, hooks: dict):
        super().__init__(storage_dir)
        self.hooks = hooks

    def report(self, metrics, checkpoint_dir=None):
        super().report(metrics, checkpoint_dir)
        if hook := self.hooks.get(len(self.reports)):
            hook()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "mlflow-server"
    running = Server(data, free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _job(server: Server, prepared_digits: Path, epochs: int) -> tuple[dict, str]:
    cfg = parse_params(tiny_params(epochs=epochs, augment=[])).variant("dcgan")  # 22 steps per epoch
    run_id = tracking.start_run(server.uri, tracking.ensure_experiment(server.uri, server.data_dir), "outage",
                                {}, {})
    job = TrainJob("dcgan", cfg.model_dump(mode="json"), str(prepared_digits), server.uri, run_id)
    return job.to_dict(), run_id


def test_metrics_of_an_outage_reach_the_run_once_the_server_is_back(server, prepared_digits, tmp_path, caplog):
    job, run_id = _job(server, prepared_digits, epochs=4)
    # Down after epoch 1's report; epoch 2's flush fails (buffered); back up after epoch 2's report.
    session = HookedSession(tmp_path / "ckpt", {1: server.stop, 2: server.start})
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking_buffer"):
        assert train_loop(job, session) is None  # trained to the end, no exception

    assert [r["epoch"] for r in session.reports] == [1, 2, 3, 4]
    steps = session.reports[-1]["step"]
    history = MlflowClient(server.uri).get_metric_history(run_id, "loss/D")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))  # every step once: no gaps, no duplicates
    outage = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage) == 1 and "training goes on" in outage[0], outage  # one line per outage
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)  # warnings, not tracebacks


def test_a_server_still_down_at_the_end_fails_in_one_line_and_keeps_the_checkpoints(
        server, prepared_digits, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GAN_LAB_MLFLOW_WAIT_S", "2")
    job, run_id = _job(server, prepared_digits, epochs=2)
    session = HookedSession(tmp_path / "ckpt", {1: server.stop})
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking_buffer"):
        assert train_loop(job, session) is None  # the worker finishes; the driver decides
    assert any("still unreachable at the end of training" in r.getMessage() for r in caplog.records)

    with pytest.raises(TrackingUnavailable) as err:
        require_tracking(server.uri, str(session.storage_dir))
    message = str(err.value)
    assert message == (f"MLflow server at {server.uri} unreachable: ConnectionError for 2 s; "
                       f"checkpoints kept in {session.storage_dir}"), message
    assert [c.name for c in sorted(session.storage_dir.glob("checkpoint_*"))] == ["checkpoint_000001",
                                                                                  "checkpoint_000002"]
    # Credentials in the address are never printed.
    with pytest.raises(TrackingUnavailable) as err:
        require_tracking(f"http://alice:s3cret@127.0.0.1:{server.port}", "x", wait_s=0)
    assert "alice:***@" in str(err.value) and "s3cret" not in str(err.value)

    server.start()  # back: the run is still there, RUNNING, for a re-run to resume and finish
    assert MlflowClient(server.uri).get_run(run_id).info.status == "RUNNING"
