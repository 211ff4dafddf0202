"""The on-disk artifacts: one write rule, and the formats that every writer and reader shares.

**The write rule.** Every output is written beside its target, then ``os.replace``-d into place, so
a reader sees either the old complete file (or directory) or the new complete one, never a
truncated one, even when the writer is killed mid-write: ``os.replace`` is atomic on POSIX within
one file system, which is why the temporary sits in the target's own directory. The temporary keeps
the target's *name* inside a hidden scratch directory ``.<name>.<random>.tmp/``: libraries derive
bytes from a file's name (``torch.save`` names its zip records after it, PIL picks the format from
its suffix), so an output written through the rule has the same bytes as one written in place. A
killed writer leaves at most such a hidden scratch directory behind, which no reader opens.

**The formats** (file names and their readers/writers, so no module spells them twice):

- ``models/<variant>/`` (written by the train stage, read by evaluate, sampling and the CLI):
  ``generator.pt`` (``{"net", "state_dict", "others"}``: the sampling network's state_dict and
  those of the family's other saved nets), ``config.json`` (the resolved variant config),
  ``spec.json`` (image shape, classes), ``history.csv`` (per-step scalars) and ``run.json`` (the
  MLflow run id, config hash, dataset sha256, epochs, steps and the worker's environment). A variant
  trained with a ``seeds`` list holds one such directory per seed, ``seed-<s>/``.
- a training checkpoint directory: ``state.pt``, ``config.json``, ``history.csv`` and optionally
  ``environment.json`` (``pipeline.train.checkpoint`` assembles and restores the state).
- the run marker ``<storage>/<run name>.run.json``: which MLflow run a Ray run belongs to
  (``{run_id, config_hash | digest, finished}``), one JSON line.
- the per-step history CSV (``history.csv``, and the plots DVC draws): one row per step, a column
  per scalar, empty where a step did not log that scalar.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from pipeline.redact import mask_credentials

# models/<variant>/ (and, for CONFIG_FILE and HISTORY_FILE, a checkpoint directory too)
GENERATOR_FILE = "generator.pt"
CONFIG_FILE = "config.json"
SPEC_FILE = "spec.json"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
SEED_DIR_PREFIX = "seed-"
# a checkpoint directory
STATE_FILE = "state.pt"
ENVIRONMENT_FILE = "environment.json"
# <storage>/<run name>.run.json
RUN_MARKER_SUFFIX = ".run.json"


# --- the write rule ------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``target``, with ``target``'s name (a file path not yet
    created, or with ``directory=True`` an empty directory); the caller writes it, and on a clean
    exit it replaces ``target``.

    An existing ``target`` directory is swapped out first (renamed into the scratch directory),
    then the new one is renamed in and the old one deleted: the gap between the two renames is the
    only time ``target`` is absent, and it is never partial (a directory cannot be ``os.replace``-d
    over a non-empty one). On an exception the temporary is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Created with mkdir, not mkdtemp: the new directory gets the usual mode (mkdtemp's is 0700).
    scratch = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    scratch.mkdir()
    tmp = scratch / target.name
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and target.exists():
            old = scratch / f"{target.name}.old"  # deleted with the scratch directory
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # put the old one back rather than delete it
                raise
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    with atomic_path(target) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def json_text(value: Any, indent: int | None = 2, sort_keys: bool = False,
              default: Callable[[Any], Any] | None = None) -> str:
    """The project's JSON files: ``json.dumps`` plus a final newline (``indent=None``: one line)."""
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=default) + "\n"


def write_json(target: str | Path, value: Any, indent: int | None = 2, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> None:
    """``value`` as JSON (:func:`json_text`) to ``target``, atomically: metrics, sidecars, run.json."""
    atomic_write_text(target, json_text(value, indent, sort_keys, default))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_torch(target: str | Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``target`` atomically (same bytes as saving in place: same file name)."""
    import torch  # here: pipeline.data imports this module and needs no torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


# --- the per-step history ------------------------------------------------------------------


def write_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """Per-step scalars as CSV (the format DVC plots read), atomically; a column per key, in order
    of first appearance (``step`` alone for an empty history)."""
    fields = list(dict.fromkeys(key for row in history for key in row)) or ["step"]
    with atomic_path(path) as tmp:
        with open(tmp, "x", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)


def read_history(path: str | Path) -> list[dict[str, float]]:
    """The rows of a history CSV as floats, empty cells left out ([] if there is no file)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


# --- models/<variant>/ ---------------------------------------------------------------------


def write_generator(model_dir: str | Path, weights: dict[str, Any], config: dict[str, Any],
                    spec: dict[str, Any]) -> None:
    """``generator.pt`` (``weights``), ``config.json`` and ``spec.json`` into ``model_dir``."""
    model_dir = Path(model_dir)
    save_torch(model_dir / GENERATOR_FILE, weights)
    write_json(model_dir / CONFIG_FILE, config)
    write_json(model_dir / SPEC_FILE, spec)


def has_generator(model_dir: str | Path) -> bool:
    return (Path(model_dir) / GENERATOR_FILE).is_file()


def read_generator(model_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(weights, config, spec)`` of one trained run; FileNotFoundError naming the stage to run."""
    import torch

    model_dir = Path(model_dir)
    if not has_generator(model_dir):
        raise FileNotFoundError(f"{model_dir}: no trained generator; run `dvc repro train@{model_dir.name}`")
    weights = torch.load(model_dir / GENERATOR_FILE, map_location="cpu", weights_only=True)
    return weights, read_json(model_dir / CONFIG_FILE), read_json(model_dir / SPEC_FILE)


def write_run_info(model_dir: str | Path, info: dict[str, Any]) -> None:
    """Write ``run.json``; a password inside its ``tracking_uri`` is masked (a DVC output is shared)."""
    if info.get("tracking_uri"):
        info = {**info, "tracking_uri": mask_credentials(info["tracking_uri"])}
    write_json(Path(model_dir) / RUN_FILE, info)


def read_run_info(model_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of one trained run (``run_id`` is the MLflow run evaluate logs into)."""
    return read_json(Path(model_dir) / RUN_FILE)


def seed_dir(model_dir: str | Path, seed: int) -> Path:
    """Where one seed of a ``seeds`` variant lives inside its model directory."""
    return Path(model_dir) / f"{SEED_DIR_PREFIX}{seed}"


def seed_model_dirs(model_dir: str | Path) -> dict[int, Path]:
    """``{seed: directory}`` of every trained run under ``models/<variant>/`` (one, or one per seed)."""
    model_dir = Path(model_dir)
    if has_generator(model_dir):
        return {read_json(model_dir / CONFIG_FILE)["seed"]: model_dir}
    runs = {int(d.name.removeprefix(SEED_DIR_PREFIX)): d for d in model_dir.glob(f"{SEED_DIR_PREFIX}*")
            if has_generator(d)}
    if not runs:
        raise FileNotFoundError(f"{model_dir}: no trained generator; run `dvc repro train@{model_dir.name}`")
    return dict(sorted(runs.items()))


# --- the run marker ------------------------------------------------------------------------


def run_marker_name(run_name: str) -> str:
    """The marker's file name beside the run's storage directory ``<run name>/``."""
    return f"{run_name}{RUN_MARKER_SUFFIX}"


def encode_run_marker(marker: dict[str, Any]) -> bytes:
    return json_text(marker, indent=None).encode()


def read_run_marker(path: str | Path) -> dict[str, Any] | None:
    """A local run marker, or None if there is none."""
    return read_json(path) if Path(path).is_file() else None


def write_run_marker(path: str | Path, marker: dict[str, Any]) -> None:
    """Write a local run marker atomically (an object store writes an object whole by itself)."""
    atomic_write_bytes(path, encode_run_marker(marker))


def finish_run_marker(path: str | Path) -> None:
    """Mark a local run as finished: its next start is a fresh one, not a resume."""
    write_run_marker(path, {**read_json(path), "finished": True})
