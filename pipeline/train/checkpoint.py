"""Checkpoint I/O: a directory with ``state.pt`` (state_dicts and plain types only, so that
``torch.load(weights_only=True)`` reads it), ``config.json`` (the resolved variant config) and
``history.csv`` (per-step scalars so far, so a resumed run keeps its loss curves) and, when given,
``environment.json`` (``pipeline.environment`` of the worker that wrote it: the driver copies the
final one into ``run.json``, so the model records the machine it was trained on, not the driver's).

The file names and the write rule are :mod:`pipeline.artifacts`': the directory is written aside
and swapped into place whole (``atomic_path(directory=True)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.artifacts import (CONFIG_FILE, ENVIRONMENT_FILE, HISTORY_FILE, STATE_FILE, atomic_path, read_history,
                                read_json, write_history, write_json)
from pipeline.families import Nets, Optimizers


def save_checkpoint(path: str | Path, nets: Nets, opts: Optimizers, *, step: int, epoch: int,
                    config: dict[str, Any], history: list[dict[str, float]],
                    extra: dict[str, Any] | None = None, environment: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint to ``path`` atomically; ``epoch`` = number of finished epochs."""
    path = Path(path)
    state = {
        "nets": {name: net.state_dict() for name, net in nets.items()},
        "opts": {name: opt.state_dict() for name, opt in opts.items()},
        "step": step,
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    with atomic_path(path, directory=True) as tmp:
        torch.save(state, tmp / STATE_FILE)
        write_json(tmp / CONFIG_FILE, config, sort_keys=True)
        write_history(tmp / HISTORY_FILE, history)
        if environment is not None:
            write_json(tmp / ENVIRONMENT_FILE, environment)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, float]]]:
    """Return ``(state, config, history)`` of a checkpoint directory."""
    path = Path(path)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    return state, read_json(path / CONFIG_FILE), read_history(path / HISTORY_FILE)


def read_environment(path: str | Path) -> dict[str, Any] | None:
    """The environment a checkpoint was written in, or None (written without one)."""
    file = Path(path) / ENVIRONMENT_FILE
    return read_json(file) if file.is_file() else None


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
