"""Driver side of ``train@<variant>``: MLflow run, Ray Train launch, and the stage outputs.

Outputs (paths come from the stage): ``models/<variant>/`` with the final sampling generator,
``config.json``, ``spec.json`` and ``run.json`` (the MLflow run id that ``evaluate`` logs into), and
the per-step scalars as CSV for ``dvc plots``. Ray's checkpoints live in ``<storage>/<variant>``:
a re-run after an interruption with the same config resumes there (and keeps its MLflow run); a
finished run or a changed config starts fresh.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from pipeline import tracking
from pipeline.config import ConfigError, Params, config_hash
from pipeline.data import load_prepared
from pipeline.families import family_for
from pipeline.sampling import save_generator
from pipeline.train.checkpoint import load_checkpoint, restore, write_history
from pipeline.train.loop import TrainJob

log = logging.getLogger(__name__)


def check_runtime(params: Params, name: str) -> None:
    """Problems only visible at run time (no GPU for use_gpu), raised as ConfigError before Ray starts."""
    cfg = params.variant(name)
    if cfg.use_gpu and not torch.cuda.is_available() and not os.environ.get("RAY_ADDRESS"):
        raise ConfigError([f"params.yaml: variants.{name}.use_gpu = True: no CUDA GPU on this machine "
                           "and no RAY_ADDRESS cluster to run on; set use_gpu: false"])


def run_marker(storage: Path, name: str) -> Path:
    """``{run_id, config_hash, finished}`` of the last training of ``name`` (beside Ray's storage)."""
    return storage / f"{name}.run.json"


def open_run(root: Path, storage: Path, name: str, params: Params, dataset_sha: str) -> str:
    """The MLflow run for this training: the interrupted run's if the config is unchanged, else new."""
    cfg = params.variant(name)
    uri = tracking.tracking_uri(root)
    experiment_id = tracking.ensure_experiment(uri, root)
    marker = run_marker(storage, name)
    digest = config_hash(cfg)
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if (previous["config_hash"] == digest and not previous.get("finished")
                and tracking.run_exists(uri, previous["run_id"])):
            log.info("an interrupted run with the same config exists (%s): resuming it", previous["run_id"])
            return previous["run_id"]
        # A finished run is not resumed: DVC re-runs a finished stage only when code or data changed.
        log.info("starting fresh (the stored run %s)", "finished" if previous.get("finished") else
                 "has another config")
        shutil.rmtree(storage / name, ignore_errors=True)
    tags = {"variant": name, "family": cfg.family, "dataset": cfg.dataset, "dataset_sha256": dataset_sha,
            "params_hash": digest, "git_commit": tracking.git_commit(root), "dvc_stage": f"train@{name}"}
    run_id = tracking.start_run(uri, experiment_id, name, {"variant": name, **cfg.model_dump(mode="json")}, tags)
    storage.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"run_id": run_id, "config_hash": digest}) + "\n")
    return run_id


def train_variant(params: Params, name: str, data_path: Path, out_dir: Path, plots_path: Path,
                  storage: Path, root: Path) -> dict:
    """Train variant ``name`` on Ray and write its outputs; returns the final reported metrics."""
    from pipeline.train.launcher import run_training  # imports ray: only when really training

    cfg = params.variant(name)
    data = load_prepared(data_path)
    storage, root = storage.resolve(), root.resolve()
    run_id = open_run(root, storage, name, params, data.sha256)
    uri = tracking.tracking_uri(root)
    job = TrainJob(name, cfg.model_dump(mode="json"), str(Path(data_path).resolve()), uri, run_id)
    result = run_training(job, cfg, str(storage), name)
    assert result.checkpoint is not None, "training finished without a checkpoint"

    family = family_for(cfg)
    nets = family.build(data.spec)
    opts = family.optimizers(nets)
    with result.checkpoint.as_directory() as ckpt_dir:
        state, _, history = load_checkpoint(ckpt_dir)
    restore(nets, opts, state)
    _write_outputs(out_dir, plots_path, family, nets, data.spec, history,
                   {"run_id": run_id, "tracking_uri": uri, "config_hash": config_hash(cfg),
                    "dataset_sha256": data.sha256, "epochs": state["epoch"], "steps": state["step"]})
    tracking.log_generator_model(uri, run_id, nets[family.sampling_net_name], family.input_example(2))
    marker = run_marker(storage, name)
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "finished": True}) + "\n")
    return dict(result.metrics or {})


def _write_outputs(out_dir: Path, plots_path: Path, family, nets, spec, history, run_info: dict) -> None:
    """Write model dir and plots CSV via temporary paths so a crash leaves no complete-looking output."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    save_generator(tmp, family, nets, spec)
    (tmp / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    plots_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_plots = plots_path.with_name(plots_path.name + ".tmp")
    write_history(tmp_plots, history)
    os.replace(tmp_plots, plots_path)
