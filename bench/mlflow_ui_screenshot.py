"""Open the project's MLflow experiment in a real browser (headless Chromium) and save a screenshot
of what a newcomer sees after `make run` and `mlflow ui`: the runs table, not MLflow 3's empty
GenAI overview (the experiment carries ``mlflow.experimentKind = custom_model_development``).

    apt-get install chromium        # Debian's package
    python bench/mlflow_ui_screenshot.py --store mlflow.db --out docs/img/mlflow_runs.png

It starts ``mlflow ui`` on a free loopback port against the store, waits for it, points Chromium at
the experiment's page, and stops the server (by its process group) whatever happens. It prints the
experiment's kind tag and the run names the store holds, so the picture can be checked against them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipeline.tracking import DEFAULT_EXPERIMENT, runs_page
from pipeline.train.local_cluster import free_port


def wait_for(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"mlflow ui did not answer at {url} within {timeout_s:.0f} s")
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="mlflow.db", help="the SQLite store make run wrote")
    parser.add_argument("--out", default="mlflow_runs.png")
    parser.add_argument("--as-is", action="store_true", help="open the plain experiment URL (no workflowType)")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    store = Path(args.store).resolve()
    if not store.is_file():
        raise SystemExit(f"--store {store}: no such file (run make run first)")
    uri = f"sqlite:///{store}"
    client = MlflowClient(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)  # as the pipeline names it
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SystemExit(f"experiment {name!r} (MLFLOW_EXPERIMENT_NAME): not in {store}")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    print("experiment kind tag:", experiment.tags.get("mlflow.experimentKind"))
    print("runs:", len(runs), sorted({r.info.run_name for r in runs}))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", "127.0.0.1", "--port", str(port)], start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        base = f"http://127.0.0.1:{port}"
        page = f"{base}/#/experiments/{experiment.experiment_id}" if args.as_is else runs_page(uri, base)
        subprocess.run([args.browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1600,1000", "--virtual-time-budget=30000",
                        f"--screenshot={Path(args.out).resolve()}", page], check=True, timeout=180)
        print("wrote", args.out, "from", page)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
