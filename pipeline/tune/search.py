"""Driver side of ``tune@<variant>``: one Ray Tune job over the variant's ``tune:`` search space.

The job's Tune state lives in ``<storage>/tune-<variant>`` and its MLflow run (the parent of one
child run per trial) is remembered in ``<storage>/tune-<variant>.run.json``. Re-running after an
interruption (Ctrl-C, a killed driver) with the same spec restores the job with ``Tuner.restore``:
finished trials are kept, unfinished ones resume from their last checkpoint. A changed spec, or a
finished job, starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.train.launcher import init_ray  # (imports ray after setting its environment)
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining
from ray.tune.search import BasicVariantGenerator

from pipeline import tracking
from pipeline.artifacts import atomic_path, finish_run_marker, read_run_marker, run_marker_name, write_run_marker
from pipeline.config import ConfigError, Params, TuneSpec
from pipeline.environment import describe_environment
from pipeline.objective import objective_of
from pipeline.search_space import Dimension, parse_dimension
from pipeline.tune.results import best_summary, read_exploits, trial_rows, write_outputs
from pipeline.tune.trials import LAST_REPORT_FILE, STARTS_FILE, asha_trial, pbt_trial

log = logging.getLogger(__name__)


class TuningInterrupted(RuntimeError):
    """The job stopped before every trial finished; its state is saved for a resume."""


def to_domain(dimension: Dimension) -> Any:
    """A parsed dimension as a Ray Tune search domain (randint includes its upper end)."""
    low_high = dimension.args
    return {"loguniform": lambda: tune.loguniform(*low_high), "uniform": lambda: tune.uniform(*low_high),
            "randint": lambda: tune.randint(low_high[0], low_high[1] + 1),
            "choice": lambda: tune.choice(list(low_high))}[dimension.kind]()


def tune_variant(params: Params, name: str, data_path: Path, evaluator_dir: Path, out_dir: Path,
                 storage: Path, root: Path) -> dict[str, Any]:
    """Run (or resume) the tuning job of variant ``name``; writes ``out_dir/{best.json,trials.csv}``."""
    spec, cfg = params.tune[name], params.variant(name)
    storage, root = storage.resolve(), root.resolve()
    dims = {key: parse_dimension(text) for key, text in spec.space.items()}
    base = cfg.for_seed(cfg.run_seeds()[0]).model_copy(update={
        "epochs": spec.max_epochs, "num_workers": spec.num_workers, "cpus_per_worker": spec.cpus_per_worker})
    objective, mode = objective_of(evaluator_dir)
    exp_name, uri = f"tune-{name}", tracking.tracking_uri(root)
    digest = hashlib.sha256(json.dumps([spec.model_dump(mode="json"), base.model_dump(mode="json")],
                                       sort_keys=True).encode()).hexdigest()[:16]
    init_ray()
    max_concurrent = _concurrency(spec, name)
    parent_run_id, restoring = _open_parent(root, storage, exp_name, name, spec, digest, objective)
    context = {"name": exp_name, "variant_name": name, "variant": base.model_dump(mode="json"),
               "data_path": str(data_path.resolve()), "tracking_uri": uri, "parent_run_id": parent_run_id,
               "train_storage": str(storage / f"{exp_name}-trials"),
               "objective": {"evaluator_dir": str(evaluator_dir.resolve()), "n": spec.n_samples, "seed": cfg.eval.seed}}
    trainable = tune.with_parameters(pbt_trial if spec.scheduler == "pbt" else asha_trial, context=context)
    # An ASHA trial only launches a TorchTrainer, whose workers reserve the CPUs; the trial holding a
    # CPU too would leave too few for the workers on 2 cores (deadlock). Ray refuses an empty
    # request, so such a trial asks for 1 byte of memory.
    resources = {"CPU": spec.cpus_per_worker} if spec.scheduler == "pbt" else {"memory": 1}
    trainable = tune.with_resources(trainable, resources)
    started = time.time()
    if restoring:
        log.info("resuming the interrupted tuning job %s (finished trials are kept)", storage / exp_name)
        tuner = tune.Tuner.restore(str(storage / exp_name), trainable, resume_unfinished=True, resume_errored=True)
    else:
        default = {key: getattr(base, key) for key in dims} if spec.include_default else None
        tuner = tune.Tuner(
            trainable, param_space={key: to_domain(d) for key, d in dims.items()},
            tune_config=tune.TuneConfig(
                metric="objective", mode=mode, num_samples=spec.num_samples, scheduler=_scheduler(spec, dims, mode),
                # (Tune ignores TuneConfig.max_concurrent_trials once a search algorithm is given.)
                search_alg=BasicVariantGenerator(points_to_evaluate=[default] if default else None,
                                                 random_state=spec.seed, max_concurrent=max_concurrent)),
            # A trial at max_epochs stops here, before PBT could exploit it after its last epoch.
            run_config=tune.RunConfig(name=exp_name, storage_path=str(storage), verbose=1,
                                      stop={"epoch": spec.max_epochs},
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=4)))
    grid, interrupted = _fit(tuner)
    if interrupted:
        raise TuningInterrupted(f"tuning of {name} was interrupted; its state is saved in {storage / exp_name}: "
                                f"run the same command (or `dvc repro`) again to resume it")
    records = [_record(result) for result in grid]
    return _finish(name, records, spec, dims, base, mode, objective, out_dir, storage / exp_name, uri, parent_run_id,
                   time.time() - started, run_marker(storage, exp_name))


def _fit(tuner: tune.Tuner) -> tuple[Any, bool]:
    """``tuner.fit()`` and whether Ctrl-C interrupted it.

    On Ctrl-C Tune saves the experiment state, stops the trials and *returns* normally, putting back
    the SIGINT handler it replaced. So a handler of ours installed before ``fit`` is back in place
    after an interrupted run, and still replaced by Tune's after a complete one.
    """
    if threading.current_thread() is not threading.main_thread():
        return tuner.fit(), False  # (signals are only handled in the main thread)

    def ours(signum: int, frame: Any) -> None:  # a second Ctrl-C, once Tune has handed it back
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, ours)
    try:
        grid = tuner.fit()
        return grid, signal.getsignal(signal.SIGINT) is ours
    finally:
        signal.signal(signal.SIGINT, previous)


def _concurrency(spec: TuneSpec, name: str) -> int:
    """Trials at once: what the cluster's CPUs hold (each trial reserves num_workers x cpus_per_worker)."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    need = spec.num_workers * spec.cpus_per_worker
    if need > cpus:
        raise ConfigError([f"params.yaml: tune.{name}: a trial needs num_workers x cpus_per_worker = {need} CPUs, "
                           f"Ray has {cpus}; lower them or join a bigger cluster (RAY_ADDRESS)"])
    return min(spec.max_concurrent or cpus // need, spec.num_samples)


def _scheduler(spec: TuneSpec, dims: dict[str, Dimension], mode: str) -> Any:
    if spec.scheduler == "fifo":
        return None  # Tune's FIFO: every trial runs its full budget (the baseline ASHA is measured against)
    if spec.scheduler == "asha":
        # time_attr "epoch" is the loop's own epoch count: a resumed trial goes on where it stopped.
        return ASHAScheduler(time_attr="epoch", max_t=spec.max_epochs, grace_period=spec.grace_epochs,
                             reduction_factor=spec.reduction_factor)

    def clip(config: dict[str, Any]) -> dict[str, Any]:  # x1.2 / x0.8 can leave the declared range
        return {key: dims[key].clip(value) if key in dims else value for key, value in config.items()}

    return PopulationBasedTraining(
        time_attr="epoch", perturbation_interval=spec.perturbation_epochs,
        hyperparam_mutations={key: to_domain(d) for key, d in dims.items()},
        quantile_fraction=spec.quantile_fraction, resample_probability=spec.resample_probability,
        # Synchronous: every trial reaches the perturbation epoch before the bottom quantile clones the
        # top one, so which trials exploit depends on their scores, not on which process ran faster.
        custom_explore_fn=clip, log_config=True, synch=True)


def run_marker(storage: Path, exp_name: str) -> Path:
    return storage / run_marker_name(exp_name)


def _open_parent(root: Path, storage: Path, exp_name: str, name: str, spec: TuneSpec, digest: str,
                 objective: str) -> tuple[str, bool]:
    """The job's MLflow parent run, and whether an interrupted job with the same spec is resumed."""
    uri, marker = tracking.tracking_uri(root), run_marker(storage, exp_name)
    if (previous := read_run_marker(marker)) is not None:
        if (previous["digest"] == digest and not previous.get("finished")
                and tune.Tuner.can_restore(str(storage / exp_name)) and tracking.run_exists(uri, previous["run_id"])):
            return previous["run_id"], True
        log.info("starting a fresh tuning job (the stored one %s)",
                 "finished" if previous.get("finished") else "has another spec")
        if not previous.get("finished") and tracking.run_exists(uri, previous["run_id"]):
            tracking.end_run(uri, previous["run_id"], "KILLED", {"tune_status": "abandoned"})
    shutil.rmtree(storage / exp_name, ignore_errors=True)
    shutil.rmtree(storage / f"{exp_name}-trials", ignore_errors=True)
    experiment_id = tracking.ensure_experiment(uri, root)
    run_id = tracking.start_run(uri, experiment_id, exp_name, {"variant": name, **spec.model_dump(mode="json")},
                                {"variant": name, "tune_scheduler": spec.scheduler, "objective": objective,
                                 "git_commit": tracking.git_commit(root), "dvc_stage": f"tune@{name}"})
    write_run_marker(marker, {"run_id": run_id, "digest": digest})
    return run_id, False


def _record(result: Any) -> dict[str, Any]:
    """A Tune result as a plain record (trial id, searched values, every report, error, launches)."""
    frame = result.metrics_dataframe
    reports = [] if frame is None else frame.to_dict("records")
    path = Path(result.path)
    last = path / LAST_REPORT_FILE  # Ray Train's last report of an ASHA trial that ran to its end
    if last.is_file():
        final = json.loads(last.read_text())
        if final.get("epoch", 0) > max((r.get("epoch", 0) for r in reports), default=0):
            reports.append(final)  # the one Tune lost (trials.asha_trial says how)
    starts = path / STARTS_FILE
    trial_id = (result.metrics or {}).get("trial_id") or "_".join(path.name.split("_")[2:4])
    return {"trial_id": trial_id, "config": dict(result.config), "reports": reports,
            "error": str(result.error) if result.error else None,
            "starts": int(starts.read_text()) if starts.is_file() else 0}


def _finish(name: str, records: list[dict], spec: TuneSpec, dims: dict, base: Any, mode: str, objective: str, out_dir: Path,
            exp_dir: Path, uri: str, parent_run_id: str, wall_s: float, marker: Path) -> dict[str, Any]:
    keys = list(dims)
    default = {key: getattr(base, key) for key in keys} if spec.include_default else None
    rows = trial_rows(records, keys, default, mode, spec.max_epochs)
    summary = {"variant": name, "scheduler": spec.scheduler,
               "objective": {"name": objective, "mode": mode, "n_samples": spec.n_samples},
               **best_summary(rows, keys, mode), "n_trials": len(rows),
               "trial_epochs": sum(r["epochs"] for r in rows), "full_budget_epochs": len(rows) * spec.max_epochs,
               "wall_s": round(wall_s, 1),  # of this invocation (a resumed job: since it resumed)
               "mlflow_parent_run_id": parent_run_id,
               # The driver's; each trial's own is in its MLflow child run (created where it trains).
               "environment": describe_environment()}
    if spec.scheduler == "pbt":
        summary["exploits"] = read_exploits(exp_dir)
    _close_runs(uri, parent_run_id, rows, summary)
    with atomic_path(out_dir, directory=True) as tmp:  # out_dir appears complete or not at all
        write_outputs(tmp, rows, summary)
        tracking.log_artifacts_to(uri, parent_run_id, tmp)
    finish_run_marker(marker)
    log.info("best trial %s: %s = %.4g after %d epochs (%s); %d trials, %d of %d trial-epochs run",
             summary["best"]["trial_id"], objective, summary["best"]["objective"], summary["best"]["epochs"],
             summary["best"]["config"], len(rows), summary["trial_epochs"], summary["full_budget_epochs"])
    return summary


def _close_runs(uri: str, parent_run_id: str, rows: list[dict], summary: dict) -> None:
    """Each trial's child run ends FINISHED (completed or stopped early, tagged so) or FAILED (an
    error, or diverged: its worker tagged the run with the reason)."""
    children = tracking.child_runs(uri, parent_run_id)
    for row in rows:
        if row["trial_id"] in children:
            last = {k: row[k] for k in ("objective", "best_objective") if row[k] is not None}
            tracking.end_run(uri, children[row["trial_id"]], "FAILED" if row["status"] in ("error", "diverged") else "FINISHED",
                             {"tune_status": row["status"]}, {f"tune/{k}": v for k, v in last.items()})
    best = summary["best"]
    tracking.end_run(uri, parent_run_id, "FINISHED", {"best_trial_id": best["trial_id"]},
                     {"tune/best_objective": best["objective"], "tune/n_trials": summary["n_trials"],
                      "tune/trial_epochs": summary["trial_epochs"]})
