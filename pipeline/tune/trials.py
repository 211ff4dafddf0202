"""What one Tune trial runs. Both trainables take Tune's ``config`` (the searched keys) and the job's
``context`` (constant for every trial, passed with ``tune.with_parameters``):

- :func:`asha_trial` launches a Ray Train ``TorchTrainer`` on the per-worker loop, exactly as
  ``train@<variant>`` does (so a trial can use several workers on a cluster); Tune's report callback
  forwards every epoch's report, and ASHA stops the trial (and with it its trainer) early;
- :func:`pbt_trial` runs the loop in the trial's own process with :class:`RayTuneSession`, whose
  Tune checkpoints PBT copies between trials.

Each trial logs into its own MLflow run, a child of the tuning job's run.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import pipeline.train.ray_env  # noqa: F401  (must precede `import ray`)
import ray.tune

from pipeline import tracking
from pipeline.artifacts import atomic_write_text
from pipeline.config import variant_from_dict
from pipeline.objective import make_objective
from pipeline.train.loop import TrainJob, train_loop

STARTS_FILE = "starts.txt"  # in the trial's directory: how often the trial was launched (resume: 2+)
LAST_REPORT_FILE = "last_report.json"  # in the trial's directory: an ASHA trial's final epoch report


def trial_job(config: dict[str, Any], context: dict[str, Any], adopt: bool) -> tuple[TrainJob, str]:
    """The training job of this trial (the variant with the searched values) and the trial's id."""
    trial = ray.tune.get_context()
    trial_id = trial.get_trial_id()
    starts = Path(trial.get_trial_dir()) / STARTS_FILE
    atomic_write_text(starts, str(int(starts.read_text()) + 1 if starts.is_file() else 1))
    variant = variant_from_dict({**context["variant"], **config}).model_dump(mode="json")
    run_id = tracking.child_run(context["tracking_uri"], context["parent_run_id"], trial_id,
                                f"{context['name']}-{trial_id}", variant,
                                {"variant": context["variant_name"], "dvc_stage": f"tune@{context['variant_name']}"})
    job = TrainJob(context["variant_name"], variant, context["data_path"], context["tracking_uri"], run_id,
                   objective=context["objective"], adopt_checkpoint=adopt)
    return job, trial_id


def asha_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """One ASHA trial: a Ray Train run (its own storage name, so a restored job resumes it)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipeline.train.launcher import ray_worker_entry, run_training

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    job, trial_id = trial_job(config, context, adopt=False)
    cfg = variant_from_dict(job.variant)
    result = run_training(job, cfg, context["train_storage"], f"{context['name']}-{trial_id}",
                          worker_fn=partial(ray_worker_entry, make_objective=make_objective),
                          callbacks=[TuneReportCallback()])
    # Tune can lose the report of the last epoch: the report travels from Ray Train through a queue
    # actor, and Tune's end-of-trial marker, sent when this function returns, may overtake it (seen
    # in CI: a finished trial listed with one epoch short). Ray Train's own result has it; keep it
    # beside the trial for the job's summary (search._record).
    if result.metrics:
        atomic_write_text(Path(ray.tune.get_context().get_trial_dir()) / LAST_REPORT_FILE,
                          json.dumps(result.metrics, default=float))


def pbt_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """One PBT trial: the loop in this process; an exploit restarts it on the better trial's checkpoint."""
    from pipeline.tune.session import RayTuneSession

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    job, _ = trial_job(config, context, adopt=True)
    train_loop(job.to_dict(), RayTuneSession(), make_objective)
