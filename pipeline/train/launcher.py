"""Launch the per-worker loop on Ray Train (``TorchTrainer``, Train V2).

Checkpoints go to ``RunConfig(storage_path, name)``; re-running with the same pair resumes from the
latest one, and ``FailureConfig(max_failures)`` restarts failed workers from it automatically.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from pipeline.train.ray_env import TRAIN_POLL_ENV  # (must precede `import ray`)
import ray
from ray.train import CheckpointConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from pipeline.config import TrainingConfig
from pipeline.train.loop import TrainJob, train_loop

log = logging.getLogger(__name__)


def ray_worker_entry(job: dict[str, Any]) -> None:
    """What each Ray Train worker runs."""
    from pipeline.train.ray_session import RayTrainSession

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers + logging.getLogger("ray").handlers:
        handler.addFilter(_drop_per_report_lines)
    train_loop(job, RayTrainSession())


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
    runtime_env = {"env_vars": {TRAIN_POLL_ENV: os.environ[TRAIN_POLL_ENV]}}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, log_to_driver=True)
    else:
        # The dashboard (loopback only) also serves the State API that Ray Train's clean-up actor
        # polls; without it that actor logs a warning every second.
        ray.init(include_dashboard=True, dashboard_host="127.0.0.1", runtime_env=runtime_env,
                 log_to_driver=True)


def run_training(job: TrainJob, cfg: TrainingConfig, storage_path: str, run_name: str,
                 worker_fn: Callable[[dict[str, Any]], None] = ray_worker_entry,
                 callbacks: list | None = None) -> Result:
    """Run ``worker_fn`` on ``cfg.num_workers`` Ray Train workers; returns the Ray Train result.

    ``callbacks``: Ray Train callbacks (a tuning trial passes Tune's report callback).
    """
    assert os.path.isabs(storage_path), f"storage_path must be absolute (workers chdir): {storage_path}"
    init_ray()
    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})}
    trainer = TorchTrainer(
        worker_fn,
        train_loop_config=job.to_dict(),
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
