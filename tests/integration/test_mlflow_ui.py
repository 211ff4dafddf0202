"""`make ui` (``python -m pipeline ui``): a real ``mlflow ui`` on loopback over the checkout's
store, whose first line is the address of the experiment's runs table.

MLflow 3.17's UI ignores the experiment's ``mlflow.experimentKind`` tag and opens on its empty GenAI
overview unless the URL asks for ``workflowType=machine_learning`` (seen in headless Chromium:
bench/mlflow_ui_screenshot.py), so the printed address must carry it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import tracking
from pipeline.train.local_cluster import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_ui_prints_the_runs_table_address_and_serves_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = tracking.ensure_experiment(uri, tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    ui = subprocess.Popen([sys.executable, "-m", "pipeline", "ui", "--port", str(port)], cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, start_new_session=True)
    try:
        first = ui.stdout.readline().strip()
        assert first == (f"gan-lab runs: http://127.0.0.1:{port}/#/experiments/{experiment_id}"
                         "?workflowType=machine_learning"), first
        deadline = time.monotonic() + 120
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                assert ui.poll() is None, f"mlflow ui exited with {ui.returncode}"
                assert time.monotonic() < deadline, "mlflow ui did not answer within 120 s"
                time.sleep(1)
        assert "<title>MLflow</title>" in page, page[:200]
        listed = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", timeout=10)
        assert b"custom_model_development" in listed.read(), "the UI must serve this checkout's store"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
