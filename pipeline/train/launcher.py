"""Launch the per-worker loop on Ray Train (``TorchTrainer``, Train V2).

Checkpoints go to ``RunConfig(storage_path, name)``; re-running with the same pair resumes from the
latest one, and ``FailureConfig(max_failures)`` restarts failed workers from it automatically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from pipeline.train.ray_env import TRAIN_POLL_ENV  # (must precede `import ray`)
import ray
from ray.train import CheckpointConfig, DataConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from pipeline.config import TrainingConfig
from pipeline.data import meta_path
from pipeline.data.npz import sha256_file
from pipeline.data.shards import ray_dataset
from pipeline.numerics import PINNED_ENV, pinned_env
from pipeline.train.data_cache import cached_copy
from pipeline.train.storage import STORAGE_ENV, is_uri
from pipeline.train.loop import TrainJob, train_loop

log = logging.getLogger(__name__)


def ray_worker_entry(job: dict[str, Any], make_objective: Callable | None = None) -> None:
    """What each Ray Train worker runs; a tuning trial passes its ``make_objective`` (see train_loop)."""
    from pipeline.train.ray_session import RayTrainSession, log_placement

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers + logging.getLogger("ray").handlers:
        handler.addFilter(_drop_per_report_lines)
    job = with_local_data(job)
    session = RayTrainSession()
    log_placement(session, job)
    train_loop(job, session, make_objective)


DATA_KEY = "shipped_data"  # TrainJob's field for the prepared data sent through Ray's object store


def ship_data(job: dict[str, Any]) -> dict[str, Any]:
    """The job with its prepared data (``.npz`` and ``.json``) put into Ray's object store, so that
    workers on nodes that do not share the driver's disk can read it (:func:`with_local_data`)."""
    npz = Path(job["data_path"])
    blobs = {"npz": npz.read_bytes(), "json": meta_path(npz).read_bytes()}
    return {**job, DATA_KEY: {"ref": ray.put(blobs), "sha256": hashlib.sha256(blobs["npz"]).hexdigest(),
                              "meta_sha256": hashlib.sha256(blobs["json"]).hexdigest()}}


def with_local_data(job: dict[str, Any]) -> dict[str, Any]:
    """The job with ``data_path`` readable on this node: the driver's file itself where this node
    sees it unchanged (the same machine or a shared filesystem), else a copy from the object store
    kept in this user's private cache and re-hashed on every reuse (:mod:`pipeline.train.data_cache`)."""
    job = dict(job)
    shipped, job[DATA_KEY] = job.get(DATA_KEY), None
    path = Path(job["data_path"])
    if shipped is None or (path.is_file() and sha256_file(path) == shipped["sha256"]):
        return job
    local = cached_copy(path.name, shipped["sha256"], shipped["meta_sha256"], lambda: ray.get(shipped["ref"]))
    log.info("data %s is not on this node: using the copy sent through Ray's object store (%s)", path, local)
    return {**job, "data_path": str(local)}


def _drop_per_report_lines(record: logging.LogRecord) -> bool:
    """Ray Train logs two long lines per report (every epoch); the loop logs its own progress."""
    message = str(record.msg)
    return not message.startswith(("Reporting training result", "Checkpoint successfully created"))


def init_ray() -> None:
    """Join ``RAY_ADDRESS`` if set, else start an embedded single-node Ray on loopback (once).

    The embedded Ray's dashboard is at http://127.0.0.1:8265 while a stage runs.
    """
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": forwarded_env()}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, log_to_driver=True)
    else:
        # The dashboard (loopback only) also serves the State API that Ray Train's clean-up actor
        # polls; without it that actor logs a warning every second.
        ray.init(include_dashboard=True, dashboard_host="127.0.0.1", runtime_env=runtime_env,
                 log_to_driver=True)


def cluster_resources() -> dict[str, float]:
    """The resources of the Ray cluster this driver runs on (joins or starts it first)."""
    init_ray()
    return ray.cluster_resources()


# What Ray's workers need from the driver's environment: MLflow's server address and user name
# (rank 0 logs), the experiment name, the report polling interval, and every GAN_LAB_* setting (the
# checkpoint storage, the bit-reproducible switch, and the import recorder of the DVC deps check,
# tests/importlog), and the variables that select the numerics' kernels (pipeline.numerics): a worker
# computes like its driver, and with GAN_LAB_BITWISE=1 starts with them pinned.
# Secrets (MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN) are never forwarded: Ray keeps a
# runtime env in its job table, readable by whoever reaches the dashboard. An embedded Ray's workers
# inherit them from this process; a cluster's nodes get them from their own environment (a
# Kubernetes Secret, the launcher's `ray start` environment: infra/README.md).
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
FORWARDED_ENV = (*PINNED_ENV, TRAIN_POLL_ENV, "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_EXPERIMENT_NAME",
                 STORAGE_ENV)
FORWARDED_PREFIX = "GAN_LAB_"


def forwarded_env() -> dict[str, str]:
    """The variables of FORWARDED_ENV set here, for every Ray worker of this driver.

    Under ``ray job submit`` the driver's runtime env is merged with the job's, and Ray refuses a
    variable both define: those the job's runtime env already sets (and so gives every worker
    itself) are left out.
    """
    job_config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    from_job = set((job_config.get("runtime_env") or {}).get("env_vars") or {})
    keys = [*FORWARDED_ENV, *(key for key in os.environ if key.startswith(FORWARDED_PREFIX))]
    # The mode's values win over the driver's own (a driver not started through stages/_common.py
    # may not have pinned them): Ray workers read them before their first tensor operation.
    values = {**{key: os.environ[key] for key in keys if os.environ.get(key)}, **pinned_env()}
    return {key: value for key, value in values.items() if key not in from_job}


# CPUs a streamed job leaves to Ray Data: its file-listing task and read tasks each take one, and
# never get it if the Train workers hold every CPU (REFERENCE.md: 2 workers x 1 CPU on 2 CPUs hang).
DATA_CPUS = 1.0


def streaming_cpus(cpus_per_worker: int, num_workers: int, cluster_cpus: float) -> tuple[float, float]:
    """(CPUs each Train worker reserves, CPUs Ray Data may use) for a streamed job: the workers'
    ``cpus_per_worker`` when DATA_CPUS are left over, else less (whole CPUs while at least one each,
    then a fraction: the worker still runs ``cpus_per_worker`` torch threads)."""
    free = cluster_cpus - cpus_per_worker * num_workers
    if free >= DATA_CPUS:
        return float(cpus_per_worker), free
    share = (cluster_cpus - DATA_CPUS) / num_workers
    if share <= 0:
        raise ValueError(f"streaming needs {DATA_CPUS:g} CPU for Ray Data besides the workers' and the Ray cluster "
                         f"has {cluster_cpus:g}; lower num_workers or add CPUs")
    worker = float(int(share)) if share >= 1 else int(share * 100) / 100  # Ray: quantities > 1 are whole
    return worker, cluster_cpus - worker * num_workers


def streamed_shards(data_path: str) -> Path | None:
    """The shards directory of a prepared dataset whose train split is streamed, else None."""
    meta = json.loads(meta_path(data_path).read_text())
    return Path(data_path).resolve().parent / meta["train_shards"] if meta.get("train_shards") else None


def data_options(job: TrainJob, cfg: TrainingConfig) -> tuple[dict[str, Any], float]:
    """TorchTrainer keyword arguments for the job's data and the CPUs each worker reserves: nothing
    extra for data in memory (shipped with the job); for a streamed split a Ray Dataset over its
    shards (split across the workers by Ray Train) and a Data CPU limit that fits beside them."""
    shards = streamed_shards(job.data_path)
    if shards is None:
        return {}, cfg.cpus_per_worker
    worker_cpus, data_cpus = streaming_cpus(cfg.cpus_per_worker, cfg.num_workers, ray.cluster_resources()["CPU"])
    from ray.data import ExecutionOptions, ExecutionResources

    limits = ExecutionOptions(resource_limits=ExecutionResources.for_limits(cpu=data_cpus))
    log.info("streaming %s through Ray Data: %g CPU per worker, up to %g CPU for reading", shards, worker_cpus,
             data_cpus)
    free = ray.available_resources().get("CPU", 0.0)
    if free < worker_cpus * cfg.num_workers + min(1.0, data_cpus):
        log.warning("only %g of the Ray cluster's %g CPUs are free now: the streamed reads wait for a CPU after the "
                    "workers start (Ray Data gives up after RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S, 1800 s by "
                    "default)", free, ray.cluster_resources()["CPU"])
    dataset = ray_dataset(shards, cfg.seed, read_cpus=min(1.0, data_cpus))
    return {"datasets": {"train": dataset}, "dataset_config": DataConfig(execution_options=limits)}, worker_cpus


def run_training(job: TrainJob, cfg: TrainingConfig, storage_path: str, run_name: str,
                 worker_fn: Callable[[dict[str, Any]], None] = ray_worker_entry,
                 callbacks: list | None = None) -> Result:
    """Run ``worker_fn`` on ``cfg.num_workers`` Ray Train workers; returns the Ray Train result.

    ``callbacks``: Ray Train callbacks (a tuning trial passes Tune's report callback). A streamed
    train split (``prepare`` wrote shards) is read through Ray Data, not shipped with the job; its
    shards must be readable where Ray runs the read tasks (one machine, or a shared filesystem).
    """
    assert os.path.isabs(storage_path) or is_uri(storage_path), (
        f"storage_path must be absolute (workers chdir) or a URI: {storage_path}")
    init_ray()
    data_kwargs, worker_cpus = data_options(job, cfg)
    resources = {"CPU": worker_cpus, **({"GPU": 1} if cfg.use_gpu else {})}
    trainer = TorchTrainer(
        worker_fn,
        **data_kwargs,
        train_loop_config=ship_data(job.to_dict()),
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=run_name, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
    )
    return trainer.fit()
