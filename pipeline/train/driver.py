"""Driver side of ``train@<variant>``: MLflow run, Ray Train launch, and the stage outputs.

Outputs (paths come from the stage): ``models/<variant>/`` with the final sampling generator,
``config.json``, ``spec.json`` and ``run.json`` (the MLflow run id that ``evaluate`` logs into), and
the per-step scalars as CSV for ``dvc plots``. A variant with a ``seeds`` list trains once per seed
(one MLflow run each, tagged ``seed``) into ``models/<variant>/seed-<s>/``. Ray's checkpoints live
in ``<storage>/<run name>`` (a local path, a path every cluster node mounts, or an object-storage
URI: ``pipeline.train.storage``): a re-run after an interruption with the same config resumes there
(and keeps its MLflow run); a finished run or a changed config starts fresh.

A run that diverges (:mod:`pipeline.train.health`) raises :class:`TrainingDiverged`: its MLflow run
ends FAILED with the reason as the ``divergence`` tag, ``models/<variant>/`` and the plots stay as
they were, and Ray's storage keeps the last (finite) checkpoints.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from pipeline import tracking
from pipeline.artifacts import HISTORY_FILE, atomic_path, seed_dir, write_history, write_run_info
from pipeline.config import ConfigError, Params, TrainingConfig, batch_size_problems, config_hash
from pipeline.redact import mask_credentials
from pipeline.data import Prepared, load_prepared
from pipeline.environment import describe_environment
from pipeline.families import family_for
from pipeline.sampling import save_generator
from pipeline.train.checkpoint import load_checkpoint, read_environment, restore
from pipeline.train.health import DIVERGENCE_TAG, injected_fault_step
from pipeline.train.loop import TrainJob
from pipeline.tracking_buffer import one_line, wait_seconds
from pipeline.train.storage import RunStorage

log = logging.getLogger(__name__)


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server is unreachable at the end of training; the message is one line and
    names where the checkpoints are kept (a re-run with the same config resumes from them)."""


class TrainingDiverged(RuntimeError):
    """Training stopped on a non-finite value or a divergence rule; ``reason`` is one line."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# Set to 1 where the cluster's autoscaler starts GPU nodes on demand (none may be up when a job starts).
WAIT_FOR_GPU_ENV = "GAN_LAB_WAIT_FOR_GPU"


def cluster_gpu_problems(name: str, workers: int, resources: dict[str, float]) -> list[str]:
    """``use_gpu`` on a Ray cluster with fewer GPUs than workers: Ray Train would wait forever."""
    gpus = resources.get("GPU", 0)
    if gpus >= workers:
        return []
    return [f"params.yaml: variants.{name}.use_gpu = True: {workers} worker(s) need a GPU each, the Ray cluster at "
            f"{os.environ.get('RAY_ADDRESS')} has {gpus:g} (CPU: {resources.get('CPU', 0):g}); set use_gpu: false "
            f"(and precision: fp32), add GPU nodes, or set {WAIT_FOR_GPU_ENV}=1 if its autoscaler starts GPU nodes "
            "on demand"]


def gpu_problems(cfg: TrainingConfig, name: str, join_cluster: bool = True) -> list[str]:
    """``use_gpu`` where its workers cannot all get a GPU: none (or too few) on this machine and no
    ``RAY_ADDRESS``, or too few in the cluster at ``RAY_ADDRESS`` (joined to ask, unless
    ``join_cluster`` is False or GAN_LAB_WAIT_FOR_GPU=1 says GPU nodes will come)."""
    if not cfg.use_gpu:
        return []
    if not os.environ.get("RAY_ADDRESS"):
        if not torch.cuda.is_available():
            return [f"params.yaml: variants.{name}.use_gpu = True: no CUDA GPU on this machine and no RAY_ADDRESS "
                    "cluster to run on; set use_gpu: false (and precision: fp32)"]
        if torch.cuda.device_count() < cfg.num_workers:
            return [f"params.yaml: variants.{name}.use_gpu = True: {cfg.num_workers} worker(s) need a GPU each, this "
                    f"machine has {torch.cuda.device_count()}; lower num_workers or join a cluster (RAY_ADDRESS)"]
        return []
    if not join_cluster or os.environ.get(WAIT_FOR_GPU_ENV) == "1":
        return []
    from pipeline.train import launcher  # imports ray: only for a GPU job on a cluster
    try:
        resources = launcher.cluster_resources()
    except Exception as err:  # a wrong or unreachable address: say so in one line, not a traceback
        return [f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}: cannot join the Ray cluster ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"]
    return cluster_gpu_problems(name, cfg.num_workers, resources)


def check_runtime(params: Params, name: str, root: Path | None = None, n_train: int | None = None) -> None:
    """Problems only visible at run time, raised as ConfigError before any training: the family's
    preflight problems against the prepared data's ``n_train`` (a StyleGAN schedule longer than its training), an MLflow tracking
    server that is unreachable or refuses the credentials, and ``use_gpu`` where the workers cannot
    all get a GPU (:func:`gpu_problems`; the cluster is joined to ask only if nothing else is wrong)."""
    cfg = params.variant(name)
    problems = []
    if n_train is not None:  # a batch the prepared split can fill, then the family's own checks (StyleGAN's schedule)
        problems += batch_size_problems(f"params.yaml: variants.{name}", cfg, n_train, f"the prepared {cfg.dataset!r}")
        if not problems:  # (StyleGAN's schedule divides by the steps of an epoch)
            problems += family_for(cfg).preflight_problems(name, params.datasets[cfg.dataset], n_train)
    if root is not None and (problem := tracking.server_problem(tracking.tracking_uri(root))):
        problems.append(problem)
    problems += gpu_problems(cfg, name, join_cluster=not problems)
    if problems:
        raise ConfigError(problems)


def seed_run_name(variant: str, cfg: TrainingConfig, seed: int) -> str:
    """Ray run and MLflow run name of one seed: the variant's name, plus ``-seed<s>`` under ``seeds``."""
    return variant if cfg.seeds is None else f"{variant}-seed{seed}"


def open_run(root: Path, storage: RunStorage | str | Path, variant: str, cfg: TrainingConfig, dataset_sha: str,
             run_name: str | None = None) -> str:
    """The MLflow run of one training (``cfg`` has its seed set): the interrupted run's if the config
    is unchanged, else a new run. The marker ``<storage>/<run name>.run.json`` holds
    ``{run_id, config_hash, finished}`` of the last training of that name."""
    run_name = run_name or variant
    storage = storage if isinstance(storage, RunStorage) else RunStorage(storage)
    uri = tracking.tracking_uri(root)
    experiment_id = tracking.ensure_experiment(uri, root)
    digest = config_hash(cfg)
    previous = storage.read_marker(run_name)
    if previous is not None:
        if (previous["config_hash"] == digest and not previous.get("finished")
                and tracking.run_exists(uri, previous["run_id"])):
            log.info("an interrupted run with the same config exists (%s): resuming it", previous["run_id"])
            tracking.reopen_run(uri, previous["run_id"], clear_tags=(DIVERGENCE_TAG,))
            return previous["run_id"]
        # A finished run is not resumed: DVC re-runs a finished stage only when code or data changed.
        log.info("starting fresh (the stored run %s)", "finished" if previous.get("finished") else
                 "has another config")
        storage.remove_run(run_name)
        # Its MLflow run is abandoned: if it still shows RUNNING (a killed process never ended it), say so.
        if tracking.run_exists(uri, previous["run_id"]) and tracking.kill_if_running(uri, previous["run_id"]):
            log.info("the abandoned MLflow run %s was RUNNING: ended KILLED", previous["run_id"])
    tags = {"variant": variant, "family": cfg.family, "dataset": cfg.dataset, "dataset_sha256": dataset_sha,
            "seed": str(cfg.seed), "params_hash": digest, "git_commit": tracking.git_commit(root),
            "dvc_stage": f"train@{variant}"}
    run_id = tracking.start_run(uri, experiment_id, run_name, {"variant": variant, **cfg.model_dump(mode="json")},
                                tags)
    storage.write_marker(run_name, {"run_id": run_id, "config_hash": digest})
    return run_id


def train_variant(params: Params, name: str, data_path: Path, out_dir: Path, plots_path: Path,
                  storage: str | Path, root: Path) -> dict:
    """Train variant ``name`` on Ray, once per seed, and write its outputs; returns the last run's metrics.

    One seed writes ``out_dir`` itself; a ``seeds`` list writes ``out_dir/seed-<s>/`` per seed and the
    plots CSV holds the per-step mean over seeds. The new ``out_dir`` is written aside and swapped in
    only when every seed is done: until then (and after a failed or diverged seed) the old one stays.
    """
    cfg = params.variant(name)
    data = load_prepared(data_path)
    storage, root = RunStorage(storage), root.resolve()
    histories, metrics = [], {}
    with atomic_path(out_dir, directory=True) as tmp:
        for seed in cfg.run_seeds():
            model_dir = tmp if cfg.seeds is None else seed_dir(tmp, seed)
            history, metrics = _train_one(cfg.for_seed(seed), name, seed_run_name(name, cfg, seed), data,
                                          data_path, model_dir, storage, root)
            histories.append(history)
    write_history(plots_path, downsample(mean_history(histories), PLOT_ROWS))  # MLflow keeps every step
    return metrics


def _train_one(cfg: TrainingConfig, variant: str, run_name: str, data: Prepared, data_path: Path,
               model_dir: Path, storage: RunStorage, root: Path) -> tuple[list[dict], dict]:
    """One Ray Train run of one seed; writes ``model_dir``; returns (per-step history, final metrics).

    Any exception (other than a divergence, which ends the run FAILED itself, or an unreachable
    server) ends the MLflow run FAILED with tag ``error`` = its first line, then propagates."""
    run_id = open_run(root, storage, variant, cfg, data.sha256, run_name)
    uri = tracking.tracking_uri(root)
    try:
        return _train_seed(cfg, variant, run_name, run_id, data, data_path, model_dir, storage, uri)
    except (TrainingDiverged, TrackingUnavailable):
        raise  # the run already ended FAILED, or the server that would record it is down
    except Exception as err:
        _fail_run(uri, run_id, err)
        raise


def _fail_run(uri: str, run_id: str, err: Exception) -> None:
    """End the run FAILED with the exception's first line as its ``error`` tag (best effort: a failure
    to record it is logged, never raised over the exception that is propagating)."""
    try:
        tracking.fail_run(uri, run_id, one_line(err, 5000))
    except Exception as record_err:  # noqa: BLE001
        log.warning("could not mark MLflow run %s FAILED: %s", run_id, one_line(record_err))


def require_tracking(uri: str, checkpoints: str, wait_s: float | None = None) -> None:
    """Raise :class:`TrackingUnavailable` if the tracking server at ``uri`` does not answer within
    ``wait_s`` seconds (default ``GAN_LAB_MLFLOW_WAIT_S``, 30); at once for a local store."""
    if problem := tracking.wait_for_server(uri, wait_seconds() if wait_s is None else wait_s):
        raise TrackingUnavailable(f"MLflow server at {mask_credentials(uri)} unreachable: {problem}; "
                                  f"checkpoints kept in {checkpoints}")


def _train_seed(cfg: TrainingConfig, variant: str, run_name: str, run_id: str, data: Prepared, data_path: Path,
                model_dir: Path, storage: RunStorage, uri: str) -> tuple[list[dict], dict]:
    """Train one seed in its open MLflow run ``run_id``; see :func:`_train_one`."""
    from pipeline.train.launcher import run_training  # imports ray: only when really training

    job = TrainJob(variant, cfg.model_dump(mode="json"), str(Path(data_path).resolve()), uri, run_id,
                   fault_step=injected_fault_step())
    result = run_training(job, cfg, str(storage), run_name)
    require_tracking(uri, storage.run_dir(run_name))  # before reading its tags or logging the model
    # Ray Train V2 keeps only reports with a checkpoint, and the diverged one has none: rank 0 tagged the run.
    if reason := tracking.run_tags(uri, run_id).get(DIVERGENCE_TAG):
        tracking.end_run(uri, run_id, "FAILED")
        raise TrainingDiverged(f"{run_name} diverged: {reason}")
    assert result.checkpoint is not None, "training finished without a checkpoint"

    family = family_for(cfg)
    nets = family.build(data.spec)
    opts = family.optimizers(nets)
    with result.checkpoint.as_directory() as ckpt_dir:
        state, _, history = load_checkpoint(ckpt_dir)
        # The worker's (it trained the model); this process's for a checkpoint written without one.
        environment = read_environment(ckpt_dir) or describe_environment()
    restore(nets, opts, state)
    save_generator(model_dir, family, nets, data.spec)
    write_history(model_dir / HISTORY_FILE, history)  # per-step scalars of this seed (evaluate reads them)
    run_info = {"run_id": run_id, "tracking_uri": uri, "config_hash": config_hash(cfg), "seed": cfg.seed,
                "dataset_sha256": data.sha256, "epochs": state["epoch"], "steps": state["step"],
                "environment": environment}
    write_run_info(model_dir, run_info)
    tracking.log_generator_model(uri, run_id, nets[family.sampling_net_name], family.input_example(2))
    storage.write_marker(run_name, {**storage.read_marker(run_name), "finished": True})
    return history, dict(result.metrics or {})


def mean_history(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-step mean of several runs' scalars (runs of one variant share their step count)."""
    if len(histories) == 1:
        return histories[0]
    return [{key: float(sum(run[i][key] for run in histories) / len(histories)) for key in rows[0]}
            for i, rows in enumerate(zip(*histories))]


PLOT_ROWS = 500  # rows of a plots/train CSV: `dvc plots show` embeds every row of every plot


def downsample(history: list[dict[str, float]], rows: int) -> list[dict[str, float]]:
    """At most about ``rows`` rows: each is the mean of ``k = ceil(len / rows)`` consecutive steps
    (a key absent from some of them averages over those that have it), stamped with the window's
    last step and epoch. A shorter history is returned as it is."""
    k = -(-len(history) // rows)
    if k <= 1:
        return history
    out = []
    for start in range(0, len(history), k):
        window = history[start:start + k]
        keys = dict.fromkeys(key for row in window for key in row)
        values = {key: [r[key] for r in window if key in r] for key in keys}
        row = {key: float(sum(v) / len(v)) for key, v in values.items()}
        row.update({key: window[-1][key] for key in ("step", "epoch") if key in window[-1]})
        out.append(row)
    return out
