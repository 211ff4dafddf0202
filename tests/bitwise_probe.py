"""Run in a subprocess by tests/integration/test_bitwise_processes.py: train what a stage trains, print sha256s.

Usage: ``python tests/bitwise_probe.py DIGITS_NPZ WORKDIR [--ray]``. Imports ``stages/_common.py``
first, as every stage does, so GAN_LAB_BITWISE=1 takes effect exactly as in ``dvc repro``. Prints
one JSON line: the sha256 of (a) the evaluator classifier's state_dict and reference features after
2 epochs and (b) the DCGAN's state_dicts after 2 training steps of the real per-worker loop.

With ``--ray`` only (b), on one Ray Train worker of an embedded Ray, and the driver does *not*
import ``_common`` (as a bench or notebook driver would not): the worker must get the mode's
settings from the runtime env the launcher builds. Also prints the worker's environment record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "stages"), str(ROOT / "tests")]

RAY = "--ray" in sys.argv
if not RAY:
    import _common  # noqa: E402,F401  (applies the mode before any tensor work)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import tiny_params  # noqa: E402
from pipeline.config import EvaluatorConfig, parse_params  # noqa: E402
from pipeline.data import load_prepared  # noqa: E402
from pipeline.evaluator import build_evaluator  # noqa: E402
from pipeline.train.checkpoint import load_checkpoint  # noqa: E402
from pipeline.train.loop import TrainJob, train_loop  # noqa: E402
from pipeline.train.session import LocalSession  # noqa: E402


def digest(tensors: dict[str, torch.Tensor | np.ndarray]) -> str:
    """sha256 over the names and raw bytes of ``tensors``, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(tensors[name])).tobytes())
    return h.hexdigest()


def evaluator_hash(data_path: str, out: Path) -> str:
    build_evaluator(EvaluatorConfig(epochs=2), load_prepared(data_path), out)
    state = torch.load(out / "evaluator.pt", weights_only=True)["state_dict"]
    with np.load(out / "reference.npz") as reference:
        features = {f"ref.{k}": reference[k] for k in reference.files}
    return digest({**{k: v.numpy() for k, v in state.items()}, **features})


def training_hash(data_path: str, out: Path) -> str:
    # Batch 512 of 1,437 digits: one epoch is exactly 2 steps of the per-worker loop.
    cfg = parse_params(tiny_params(epochs=1)).variant("dcgan").model_copy(update={"batch_size": 512})
    session = LocalSession(out)
    train_loop(TrainJob("dcgan", cfg.model_dump(mode="json"), data_path).to_dict(), session)
    state, _, _ = load_checkpoint(session.latest_checkpoint())
    assert state["step"] == 2, f"expected 2 training steps, got {state['step']}"
    return digest({f"{net}.{k}": v.numpy() for net, sd in state["nets"].items() for k, v in sd.items()})


def ray_training(data_path: str, out: Path) -> dict:
    """(b) on one Ray Train worker; its hash and the environment its checkpoint recorded."""
    from pipeline.train.launcher import run_training

    cfg = parse_params(tiny_params(epochs=1)).variant("dcgan").model_copy(update={"batch_size": 512})
    result = run_training(TrainJob("dcgan", cfg.model_dump(mode="json"), data_path), cfg, str(out), "bitwise")
    with result.checkpoint.as_directory() as directory:
        path = next(Path(directory).rglob("state.pt")).parent
        state, _, _ = load_checkpoint(path)
        environment = json.loads((path / "environment.json").read_text())
    assert state["step"] == 2, f"expected 2 training steps, got {state['step']}"
    return {"train": digest({f"{net}.{k}": v.numpy() for net, sd in state["nets"].items() for k, v in sd.items()}),
            "worker_env": environment["env"], "worker_torch": environment["torch"]}


if __name__ == "__main__":
    data, work = sys.argv[1], Path(sys.argv[2])
    if RAY:
        print(json.dumps(ray_training(data, work / "ray")))
        sys.exit(0)
    print(json.dumps({"evaluator": evaluator_hash(data, work / "evaluator"),
                      "train": training_hash(data, work / "train"),
                      "deterministic": torch.are_deterministic_algorithms_enabled(),
                      "threads": torch.get_num_threads(),
                      "capability": torch.backends.cpu.get_cpu_capability()}))
