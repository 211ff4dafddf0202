"""The per-worker training loop. It does not know whether it runs under Ray Train, in a Ray Tune
trial or in-process: everything runtime-specific comes through the :class:`Session`.

Divergence (a NaN/inf step scalar, broken weights or a ``divergence`` rule, :mod:`.health`) stops
every rank at once with a one-line reason: a last report flagged ``diverged`` (no checkpoint, so the
last checkpoint kept is a finite one), the reason as the MLflow run's ``divergence`` tag, and the
reason returned to an in-process caller.

Every rank builds the same initial weights (seeded), trains on its shard of each global batch,
averages gradients with the other ranks, and calls ``session.report`` once per epoch (a barrier),
or once per few epochs when epochs are very short (:func:`report_interval`). Rank 0 alone writes
checkpoints and talks to MLflow.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pipeline.config import variant_from_dict
from pipeline.data import Prepared, load_prepared
from pipeline.environment import describe_environment
from pipeline.families import Family, Nets, family_for
from pipeline.families.base import StepEnv, autocast_for
from pipeline.images import preview
from pipeline.numerics import configure_torch
from pipeline.sampling import translation_picture
from pipeline.train.checkpoint import load_checkpoint, restore, save_checkpoint
from pipeline.train.distributed import make_grad_sync
from pipeline.train.health import (DIVERGENCE_TAG, HEALTH_SAMPLES, WORST_OBJECTIVE, CollapseMonitor, DivergenceWatch,
                                   agree, inject_nan, nonfinite_weights, real_reference)
from pipeline.train.session import Session
from pipeline.train.sharding import training_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, as plain picklable values (absolute paths: Ray workers chdir)."""

    variant_name: str
    variant: dict[str, Any]  # TrainingConfig.model_dump(mode="json")
    data_path: str
    tracking_uri: str | None = None
    run_id: str | None = None
    grid_samples: int = 64
    # A tuning trial: {"evaluator_dir", "n", "seed"} of the quality measured at every report
    # (pipeline.objective), and whether a checkpoint of another config is adopted (a PBT exploit).
    objective: dict[str, Any] | None = None
    adopt_checkpoint: bool = False
    # {"ref", "sha256"} of the prepared data in Ray's object store (launcher.ship_data), for workers on
    # nodes that cannot read data_path; the loop itself always reads data_path.
    shipped_data: dict[str, Any] | None = None
    # Fault injection (tests, drills; health.INJECT_NAN_ENV read by the driver): a weight becomes NaN
    # just before this global step (1-based). None in every normal run.
    fault_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """Seed of one rank's randomness (z, augmentation) in one epoch; makes resume exact on all ranks."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])


# A report carries a checkpoint and rank 0 also draws a sample grid: about 0.2 s on 2 CPU cores.
# With a large batch an epoch can be 2 steps (0.3 s), so reports then come every few epochs.
MIN_STEPS_PER_REPORT = 20


def report_interval(steps_per_epoch: int) -> int:
    """Epochs between reports (checkpoint, sample grid, epoch metrics): 1 unless an epoch is shorter
    than MIN_STEPS_PER_REPORT steps. The last epoch is always reported."""
    return max(1, -(-MIN_STEPS_PER_REPORT // steps_per_epoch))


def place_nets(nets: Nets, device: torch.device | str, channels_last: bool) -> Nets:
    """The nets on ``device``; with ``channels_last`` their 4-D (conv) weights in NHWC layout, which
    oneDNN's CPU convolutions run about 1.25x faster (docs/benchmarks.md). A conv whose weight is
    channels-last converts its input itself, so the data need not change layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {name: net.to(device, memory_format=fmt) for name, net in nets.items()}


def train_loop(job_dict: dict[str, Any], session: Session,
               make_objective: Callable[[dict[str, Any], Family, Prepared], Any] | None = None) -> str | None:
    """Train one variant for ``cfg.epochs`` epochs, resuming from the session's latest checkpoint;
    returns None, or the one-line reason it stopped early because the run diverged.

    A tuning trial's job names its objective (``job.objective``); the caller passes the factory that
    builds it (:func:`pipeline.objective.make_objective`), so the loop knows nothing of tuning."""
    job = TrainJob(**job_dict)
    if job.objective and make_objective is None:
        raise ValueError(f"{job.variant_name}: the job asks for an objective but the loop was given no make_objective")
    cfg = variant_from_dict(job.variant)
    rank, world = session.world_rank, session.world_size
    device = getattr(session, "device", torch.device("cpu"))
    torch.set_num_threads(cfg.cpus_per_worker)
    configure_torch(cfg.cpus_per_worker)  # GAN_LAB_BITWISE=1: deterministic algorithms too

    data = load_prepared(job.data_path)
    family = family_for(cfg)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    nets = place_nets(family.build(data.spec), device, cfg.channels_last)
    opts = family.optimizers(nets)
    start_epoch, step, history = resume_state(session, nets, opts, job.variant, job.adopt_checkpoint)
    objective = make_objective(job.objective, family, data) if rank == 0 and job.objective else None

    batches = training_batches(data, cfg.batch_size, rank, world, cfg.seed, device, session)
    env = StepEnv(step=step, device=device, sync_grads=make_grad_sync(world),
                  autocast=autocast_for(cfg.precision, device))
    logger = _run_logger(job) if rank == 0 and job.run_id else None
    # Where the computation happens (this worker, after set_num_threads): into the run and the checkpoints.
    environment = describe_environment(device) if rank == 0 else None
    if logger:
        logger.log_environment(environment)
        if history:  # resumed: a step scalar the killed run logged, to skip its steps already in the run
            logger.skip_logged(next(k for k in history[-1] if k not in ("step", "epoch")))
    if rank == 0:
        log.info("%s: epochs %d..%d, %d steps/epoch, %d worker(s)", job.variant_name, start_epoch + 1,
                 cfg.epochs, batches.steps_per_epoch(), world)

    if start_epoch >= cfg.epochs:  # finished before: report its state once so the run has a result
        final = {"epoch": start_epoch, "step": step, **(objective(nets) if objective else {})}
        _report(session, final, nets, opts, job, history, start_epoch, environment)
        return None
    every = report_interval(batches.steps_per_epoch())
    watch = DivergenceWatch(cfg.divergence)
    collapse = _collapse_monitor(family, data) if logger else None
    sums: dict[str, float] = {}
    steps, seconds = 0, 0.0  # since the last report
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(epoch_seed(cfg.seed, rank, epoch))
        env.epoch = epoch
        started = time.perf_counter()
        for batch in batches.epoch(epoch):
            env.step = step
            if step + 1 == job.fault_step:
                inject_nan(nets)
            scalars = family.train_step(nets, opts, batch, env)
            step += 1
            for key, value in scalars.items():
                sums[key] = sums.get(key, 0.0) + value
            if rank == 0:
                history.append({"step": step, "epoch": epoch + 1, **scalars})
                if logger:
                    logger.log_step(scalars, step)
            if watch.step(scalars, step, epoch + 1) and world == 1:
                break  # (several ranks finish the epoch: their gradient all-reduces must pair up)
        seconds += time.perf_counter() - started
        steps += batches.steps_per_epoch()
        reporting = not ((epoch + 1) % every and epoch + 1 < cfg.epochs)
        reason = watch.end_epoch(epoch + 1, step)
        if reason is None and reporting and (broken := nonfinite_weights(nets)):
            reason = f"non-finite weights in {broken} after step {step} (epoch {epoch + 1})"
        if reason := agree(reason, world):
            return _stop(session, reason, logger, job.variant_name, epoch + 1, step, objective)
        if not reporting:
            continue
        metrics = {key: total / steps for key, total in sums.items()}
        metrics.update({"epoch": epoch + 1, "step": step, "perf/samples_per_s": steps * cfg.batch_size / seconds})
        sums, steps, seconds = {}, 0, 0.0
        if objective:
            metrics.update(objective(nets))
        if logger:
            logger.log_step({k: v for k, v in metrics.items() if k.startswith(("perf/", "objective"))}, step)
            picture, samples = _epoch_picture(family, nets, data, cfg.seed, job.grid_samples)
            if collapse is not None:
                _log_health(logger, collapse, samples, step, epoch + 1, job.variant_name)
            logger.flush()
            logger.log_image(picture, "samples", epoch + 1)
        _report(session, metrics, nets, opts, job, history, epoch + 1, environment)
        # Log the first report of this launch, then the reports at about every 5% of the epochs.
        if rank == 0 and (epoch < start_epoch + every or (epoch + 1) % max(every, cfg.epochs // 20) < every):
            log.info("%s epoch %d/%d (%.0f%%): %s", job.variant_name, epoch + 1, cfg.epochs,
                     100 * (epoch + 1) / cfg.epochs,
                     ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k not in ("epoch", "step")))
    if logger:  # what an outage left buffered; never raises (the driver fails the stage if the server is down)
        logger.close()
    return None


def _stop(session: Session, reason: str, logger, variant: str, epoch: int, step: int, objective) -> str:
    """End a diverged run on every rank: one last report flagged ``diverged`` without a checkpoint
    (the checkpoints kept are all finite), carrying a tuning trial's worst objective so that
    schedulers rank it last; rank 0 tags the MLflow run with the reason, which the driver reads."""
    if session.world_rank == 0:
        log.error("%s diverged: %s", variant, reason)
        if logger:
            logger.set_tags({DIVERGENCE_TAG: reason})
            logger.close()
    metrics: dict[str, Any] = {"epoch": epoch, "step": step, "diverged": 1.0}
    if objective is not None:
        metrics["objective"] = WORST_OBJECTIVE[objective.mode]
    session.report(metrics, None)
    return reason


def _collapse_monitor(family, data) -> CollapseMonitor | None:
    """Rank 0's mode-collapse signal against real test data (none for translation families)."""
    if family.translates or not len(data.x_test):
        return None
    return CollapseMonitor(real_reference(data.x_test, HEALTH_SAMPLES))


def _log_health(logger, collapse: CollapseMonitor, samples: np.ndarray | None, step: int, epoch: int,
                variant: str) -> None:
    """``health/*`` metrics of this report's sample grid; the first collapse also tags the run."""
    if samples is None:
        return
    health = collapse.measure(samples)
    logger.log_step(health, step)
    if health["health/collapsed"] and not collapse.warned:
        collapse.warned = True
        line = (f"possible mode collapse at epoch {epoch}: sample spread {health['health/spread_ratio']:.3f} "
                f"of the real data's (threshold {collapse.threshold})")
        log.warning("%s: %s", variant, line)
        logger.set_tags({"health.warning": line})


def _run_logger(job: TrainJob):
    """Rank 0's MLflow logger (imported here: a worker without a run needs no mlflow installed). It
    survives a tracking-server outage: buffered, retried, never raising (pipeline.tracking_buffer);
    MLflow's own HTTP retries are off (0): the next flush is the retry."""
    from pipeline.tracking import RunLogger
    from pipeline.tracking_buffer import OutageTolerantLogger

    return OutageTolerantLogger(RunLogger(job.tracking_uri, job.run_id, max_retries=0), job.tracking_uri)


def resume_state(session: Session, nets: dict, opts: dict, variant: dict[str, Any],
                 adopt: bool = False) -> tuple[int, int, list[dict[str, float]]]:
    """Load the latest checkpoint if its config equals ``variant``; returns (epoch, step, history).

    With ``adopt`` (a PBT trial) a checkpoint of another config is loaded too, keeping this config's
    optimiser hyperparameters (lr, betas): PBT's exploit copies the weights and explores the values.
    """
    path = session.latest_checkpoint()
    if path is None:
        return 0, 0, []
    state, config, history = load_checkpoint(path)
    if config != variant and not adopt:
        log.warning("checkpoint %s was made with a different config; starting fresh", path)
        return 0, 0, []
    restore(nets, opts, state, keep_hyperparameters=adopt)
    changed = sorted(k for k in variant if config.get(k) != variant[k])
    log.info("resuming from %s at epoch %d, step %d%s", path, state["epoch"], state["step"],
             f" (adopted; this trial's values of {', '.join(changed)})" if changed else "")
    return int(state["epoch"]), int(state["step"]), history


def _report(session: Session, metrics: dict[str, float], nets: dict, opts: dict, job: TrainJob,
            history: list[dict[str, float]], epoch: int, environment: dict[str, Any] | None = None) -> None:
    """Report on every rank; rank 0 attaches a freshly written checkpoint (then removes its copy)
    holding ``environment``, the worker's (``pipeline.environment``)."""
    if session.world_rank != 0:
        session.report(metrics, None)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ckpt-"))
    try:
        path = save_checkpoint(tmp / "checkpoint", nets, opts, step=int(metrics["step"]), epoch=epoch,
                               config=job.variant, history=history, environment=environment)
        session.report(metrics, str(path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _epoch_picture(family, nets: dict, data, seed: int, n_images: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The same inputs every epoch, so the MLflow image slider shows training progress: a grid of
    ``n_images`` samples (a scatter of 1,000 points for 2-D data), or for a translation family the
    first 8 test images of each domain with their translations and reconstructions. Returns the
    picture and the samples it shows (None for translations), which the health signal reuses."""
    modes = {name: net.training for name, net in nets.items()}
    try:
        if family.translates:
            return translation_picture(family, nets, data), None
        n = 1000 if data.spec.point_dim else n_images  # a scatter needs more points
        samples = family.sample(nets, n, torch.Generator().manual_seed(seed)).cpu().numpy()
        return preview(samples), samples
    finally:  # sampling switches nets to eval mode; a trained net (the VAE's decoder) must go on in train mode
        for name, net in nets.items():
            net.train(modes[name])
