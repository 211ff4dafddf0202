"""Checkpoint I/O: a directory with ``state.pt`` (state_dicts and plain types only, so that
``torch.load(weights_only=True)`` reads it), ``config.json`` (the resolved variant config) and
``history.csv`` (per-step scalars so far, so a resumed run keeps its loss curves) and, when given,
``environment.json`` (``pipeline.environment`` of the worker that wrote it: the driver copies the
final one into ``run.json``, so the model records the machine it was trained on, not the driver's).

Writes are atomic: everything goes to a temporary sibling directory that is renamed into place.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from pipeline.families import Nets, Optimizers

STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
ENVIRONMENT_FILE = "environment.json"


def save_checkpoint(path: str | Path, nets: Nets, opts: Optimizers, *, step: int, epoch: int,
                    config: dict[str, Any], history: list[dict[str, float]],
                    extra: dict[str, Any] | None = None, environment: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint to ``path`` atomically; ``epoch`` = number of finished epochs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    state = {
        "nets": {name: net.state_dict() for name, net in nets.items()},
        "opts": {name: opt.state_dict() for name, opt in opts.items()},
        "step": step,
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    torch.save(state, tmp / STATE_FILE)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_history(tmp / HISTORY_FILE, history)
    if environment is not None:
        (tmp / ENVIRONMENT_FILE).write_text(json.dumps(environment, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, float]]]:
    """Return ``(state, config, history)`` of a checkpoint directory."""
    path = Path(path)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    config = json.loads((path / CONFIG_FILE).read_text())
    return state, config, read_history(path / HISTORY_FILE)


def read_environment(path: str | Path) -> dict[str, Any] | None:
    """The environment a checkpoint was written in, or None (written without one)."""
    file = Path(path) / ENVIRONMENT_FILE
    return json.loads(file.read_text()) if file.is_file() else None


def restore(nets: Nets, opts: Optimizers, state: dict[str, Any], keep_hyperparameters: bool = False) -> None:
    """Load every state_dict of ``state`` into ``nets`` and ``opts`` (names must match).

    ``keep_hyperparameters``: the optimisers keep their own param-group values (lr, betas, ...) and
    take only the per-parameter state (Adam's moments) from the checkpoint.
    """
    assert state["nets"].keys() == nets.keys(), (
        f"checkpoint holds nets {sorted(state['nets'])}, the family built {sorted(nets)}")
    for name, net in nets.items():
        net.load_state_dict(state["nets"][name])
    for name, opt in opts.items():
        own = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
        opt.load_state_dict(state["opts"][name])
        if keep_hyperparameters:
            for group, values in zip(opt.param_groups, own):
                group.update(values)


def write_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """Per-step scalars as CSV (the format DVC plots read)."""
    fields = list(dict.fromkeys(key for row in history for key in row)) or ["step"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)


def read_history(path: str | Path) -> list[dict[str, float]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
