"""MLflow tracking: the only module that imports mlflow.

Defaults to an embedded SQLite store, ``sqlite:///<repo>/mlflow.db``, with artifacts beside it in
``<repo>/mlartifacts`` (what ``mlflow ui`` run from the repo root shows). ``MLFLOW_TRACKING_URI``
points everything at another store or a tracking server; ``MLFLOW_EXPERIMENT_NAME`` renames the
experiment. The driver creates the experiment and the run (SQLite migrations race if workers do);
rank 0 of the training workers then logs into that run by id through :class:`RunLogger`.

Every run records the environment it was computed in (``pipeline.environment``): the process that
creates it (:func:`start_run`) as ``env.*`` tags and an ``environment.json`` artifact; a training
worker that logs into a driver's run adds ``environment_worker.json`` and ``env.worker.*`` tags
where it differs (:meth:`RunLogger.log_environment`). Tags, not params: params must stay equal
across machines for runs of one config to compare.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pipeline.environment import describe_environment, environment_tags
from pipeline.redact import mask_credentials

DEFAULT_EXPERIMENT = "gan-lab"
ENVIRONMENT_ARTIFACT = "environment.json"
WORKER_ENVIRONMENT_ARTIFACT = "environment_worker.json"


def tracking_uri(root: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store at ``root/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve()}/mlflow.db"


def wait_for_server(uri: str, wait_s: float, poll_s: float = 1.0) -> str | None:
    """None as soon as the tracking server at ``uri`` answers (at once for a local store); else, after
    trying for ``wait_s`` seconds, a short reason (``ConnectionError for 30 s``). The end of training
    asks this before it reads the run's tags and logs the model (docs/reliability.md)."""
    deadline = time.monotonic() + wait_s
    while True:
        problem = server_problem(uri, timeout_s=max(1.0, min(5.0, wait_s)))
        if problem is None:
            return None
        if time.monotonic() + poll_s > deadline:
            reason = re.search(r"unreachable \((\w+)\)", problem)
            return f"{reason.group(1) if reason else problem.split(': ', 1)[-1]} for {wait_s:.0f} s"
        time.sleep(poll_s)


def server_problem(uri: str, timeout_s: float = 10.0) -> str | None:
    """Why the tracking server at ``uri`` cannot be used (unreachable, credentials refused, not an
    MLflow server), or None when it answers; None at once for a local store (sqlite:, file paths).

    Asked before any training so that a wrong ``MLFLOW_TRACKING_URI`` or password fails in seconds,
    not after the first epoch. Credentials come from MLflow's own variables:
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic auth, MLflow's auth app) or
    ``MLFLOW_TRACKING_TOKEN`` (bearer); ``MLFLOW_TRACKING_INSECURE_TLS=true`` skips TLS verification.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    import requests

    headers, auth = {}, None
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    verify = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() != "true"
    where = f"MLFLOW_TRACKING_URI={mask_credentials(uri)}"
    try:
        answer = requests.post(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search", json={"max_results": 1},
                               headers=headers, auth=auth, timeout=timeout_s, verify=verify)
    except requests.RequestException as err:
        return f"{where}: the MLflow tracking server is unreachable ({type(err).__name__}); start it " \
               "(infra/mlflow/serve.sh) or fix the address"
    if answer.status_code in (401, 403):
        given = "no credentials were given" if not (auth or headers) else "the credentials were refused"
        return f"{where}: the MLflow tracking server answered HTTP {answer.status_code}: {given}; set " \
               "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
    if answer.status_code != 200:
        return f"{where}: not a usable MLflow tracking server (HTTP {answer.status_code} from the experiments API)"
    return None


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


def ensure_experiment(uri: str, root: str | Path) -> str:
    """Create (or find) the experiment; returns its id. Local stores keep artifacts in root/mlartifacts."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:"):
        location = (Path(root).resolve() / "mlartifacts").as_uri()
    # Read by MLflow's API and by UIs without the GenAI / Model training switch. MLflow 3.17's UI
    # ignores it and opens every experiment on the (empty) GenAI overview unless the URL carries
    # ?workflowType=machine_learning (checked in headless Chromium): see runs_page.
    return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: "custom_model_development"})


def runs_page(uri: str, base_url: str) -> str:
    """The address of the experiment's runs table in an MLflow UI at ``base_url``: the
    ``workflowType`` in the URL is what makes MLflow 3.17's UI show training runs, not its GenAI
    overview; the switch then sticks in that browser."""
    found = MlflowClient(uri).get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    where = f"experiments/{found.experiment_id}" if found is not None else "experiments"
    return f"{base_url.rstrip('/')}/#/{where}?workflowType=machine_learning"


def git_commit(root: str | Path) -> str:
    """HEAD's commit, with '-dirty' when tracked files differ from it; 'unknown' outside git.

    ``GAN_LAB_GIT_COMMIT`` overrides it: a job submitted to a Ray cluster runs in an uploaded copy
    without the repository's history (infra/ray/job.sh), so the submitter passes its commit.
    """
    if os.environ.get("GAN_LAB_GIT_COMMIT"):
        return os.environ["GAN_LAB_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def start_run(uri: str, experiment_id: str, run_name: str, params: dict[str, Any],
              tags: dict[str, str]) -> str:
    """Create a run with all resolved params (flattened, 'a.b' keys), lineage tags and this process's
    environment (``env.*`` tags, ``environment.json``); returns its id."""
    client = MlflowClient(uri)
    environment = describe_environment()
    run = client.create_run(experiment_id, run_name=run_name, tags={**environment_tags(environment), **tags})
    client.log_dict(run.info.run_id, environment, ENVIRONMENT_ARTIFACT)
    flat = flatten(params)
    items = [mlflow.entities.Param(k, str(v)) for k, v in flat.items()]
    for i in range(0, len(items), 100):  # log_batch takes at most 100 params per call
        client.log_batch(run.info.run_id, params=items[i:i + 100])
    return run.info.run_id


def child_run(uri: str, parent_run_id: str, trial_id: str, run_name: str, params: dict[str, Any],
              tags: dict[str, str]) -> str:
    """The MLflow run of one tuning trial, nested under the tuning job's run (``mlflow.parentRunId``):
    found by its ``trial_id`` tag when a restored job re-runs the trial, else created."""
    client = MlflowClient(uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    found = client.search_runs([experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.trial_id = '{trial_id}'"))
    if found:
        return found[0].info.run_id
    return start_run(uri, experiment_id, run_name, params,
                     {**tags, "mlflow.parentRunId": parent_run_id, "trial_id": trial_id})


def child_runs(uri: str, parent_run_id: str) -> dict[str, str]:
    """``trial_id -> run_id`` of the runs nested under ``parent_run_id``."""
    client = MlflowClient(uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    return {run.data.tags["trial_id"]: run.info.run_id for run in runs if "trial_id" in run.data.tags}


def log_artifacts_to(uri: str, run_id: str, directory: str | Path) -> None:
    MlflowClient(uri).log_artifacts(run_id, str(directory))


def end_run(uri: str, run_id: str, status: str, tags: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None) -> None:
    """Close a run: ``status`` is FINISHED, FAILED or KILLED; optional last tags and metrics."""
    client = MlflowClient(uri)
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    if metrics:
        client.log_batch(run_id, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items()])
    client.set_terminated(run_id, status)


def kill_if_running(uri: str, run_id: str) -> bool:
    """End an abandoned run KILLED if MLflow still shows it RUNNING; True when it did."""
    client = MlflowClient(uri)
    if client.get_run(run_id).info.status != "RUNNING":
        return False
    client.set_terminated(run_id, "KILLED")
    return True


def fail_run(uri: str, run_id: str, error: str) -> None:
    """End a run FAILED with ``error`` (one line) as its ``error`` tag; quick retries (it runs while
    an exception propagates, and must not hide it for minutes)."""
    with _http_retries(0):
        client = MlflowClient(uri)
        client.set_tag(run_id, "error", error[:5000])
        client.set_terminated(run_id, "FAILED")


def run_tags(uri: str, run_id: str) -> dict[str, str]:
    return dict(MlflowClient(uri).get_run(run_id).data.tags)


def reopen_run(uri: str, run_id: str, clear_tags: tuple[str, ...] = ()) -> None:
    """A resumed run is RUNNING again, without the tags its previous attempt ended with (a divergence
    reason), so that they describe only the attempt that ends it next."""
    client = MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    for key in clear_tags:
        if key in tags:
            client.delete_tag(run_id, key)
    client.update_run(run_id, status="RUNNING")


def run_exists(uri: str, run_id: str) -> bool:
    try:
        MlflowClient(uri).get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def _http_retries(max_retries: int | None, timeout_s: int = 20):
    """MLflow's HTTP retries for the calls inside (None: MLflow's own, 7 retries with backoff, minutes
    against a server that is down). MLflow reads them from the environment at each request, so they
    are set there for the duration and restored after; a user's own setting is left alone."""
    names = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(max_retries), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)}
    if max_retries is None or any(name in os.environ for name in names):
        yield
        return
    os.environ.update(names)
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)


class RunLogger:
    """Logs into an existing run by id. Step metrics are buffered and written in batches.

    ``max_retries`` (e.g. 0 for a training worker, whose own retry is the next flush) bounds MLflow's
    HTTP retries so that a server outage fails a call in seconds instead of minutes.
    """

    def __init__(self, uri: str, run_id: str, max_retries: int | None = None):
        self.client = MlflowClient(uri)
        self.run_id = run_id
        self.max_retries = max_retries
        self._buffer: list[Metric] = []

    def log_points(self, points: list[tuple[str, float, int, int]]) -> None:
        """Write ``(key, value, timestamp_ms, step)`` points in one batch (at most 1000)."""
        with _http_retries(self.max_retries):
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in points])

    def log_step(self, scalars: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), now, step) for k, v in scalars.items()]

    def logged_through(self, key: str) -> int:
        """The highest step of metric ``key`` already in the run (0 if none)."""
        with _http_retries(self.max_retries):
            return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)

    def flush(self) -> None:
        with _http_retries(self.max_retries):
            for i in range(0, len(self._buffer), 1000):  # log_batch takes at most 1000 metrics per call
                self.client.log_batch(self.run_id, metrics=self._buffer[i:i + 1000])
        self._buffer = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.log_step(metrics, step or 0)
        self.flush()

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """An image series (``key``, one per ``step``): the MLflow UI shows it with a step slider."""
        with _http_retries(self.max_retries):
            self.client.log_image(self.run_id, image, key=key, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        with _http_retries(self.max_retries):
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)

    def log_environment(self, environment: dict[str, Any]) -> None:
        """Record a training worker's environment in the run its driver created.

        The whole of it goes to ``environment_worker.json``; tags ``env.worker.<key>`` only where it
        differs from the creator's ``env.<key>`` (on one machine: the threads the worker was given),
        so the run's tag list stays short and a differing value stands out.
        """
        with _http_retries(self.max_retries):
            existing = self.client.get_run(self.run_id).data.tags
            differs = {f"env.worker.{key.removeprefix('env.')}": value
                       for key, value in environment_tags(environment).items() if existing.get(key) != value}
            self.set_tags(differs)
            self.client.log_dict(self.run_id, environment, WORKER_ENVIRONMENT_ARTIFACT)


def log_generator_model(uri: str, run_id: str, module: Any, input_example: np.ndarray) -> None:
    """Log ``module`` as an MLflow PyTorch model named ``generator`` (torch.export 'pt2' format)."""
    import torch

    # The fluent API needs a global tracking URI, and mlflow.set_tracking_uri also exports it as
    # MLFLOW_TRACKING_URI; restore both so that later calls keep honouring the caller's store.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id):
            mlflow.pytorch.log_model(
                module.eval(), name="generator", input_example=input_example,
                # Pinned requirements skip MLflow's slow import-tracing of the model's dependencies.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    finally:
        mlflow.set_tracking_uri(previous)


def log_report(root: str | Path, report_dir: str | Path) -> str:
    """A run named ``report`` (tag dvc_stage=report) holding the report directory; returns its id."""
    uri = tracking_uri(root)
    run_id = start_run(uri, ensure_experiment(uri, root), "report", {},
                       {"dvc_stage": "report", "git_commit": git_commit(root)})
    RunLogger(uri, run_id).log_artifacts(report_dir, "report")
    MlflowClient(uri).set_terminated(run_id)
    return run_id
