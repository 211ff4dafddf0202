"""Training throughput: Ray Train (1 and 2 workers) against a plain PyTorch loop on the same model.

Same DCGAN, data, global batch and number of epochs everywhere. Samples/s counts training images
per second of training time (the last epochs' mean); wall time includes Ray's start-up and the
per-epoch checkpoints. Run after `dvc repro prepare@digits`:

    python bench/throughput.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from plain import plain_epochs
from pipeline.config import load_params, variant_from_dict
from pipeline.data import load_prepared
from pipeline.train.launcher import init_ray, run_training
from pipeline.train.loop import TrainJob

DATA = Path("data/prepared/digits.npz").resolve()


def plain_loop(cfg, threads: int) -> tuple[float, float]:
    """(samples/s over the last half of the epochs, wall seconds) of the bare PyTorch loop."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    rates = [rate for _, _, _, rate in plain_epochs(cfg, load_prepared(DATA))]
    half = rates[len(rates) // 2:]
    return sum(half) / len(half), time.perf_counter() - started


def ray_train(cfg, storage: str) -> tuple[float, float]:
    started = time.perf_counter()
    job = TrainJob("bench", cfg.model_dump(mode="json"), str(DATA))
    result = run_training(job, cfg, storage, f"bench-{cfg.num_workers}x{cfg.cpus_per_worker}")
    return result.metrics["perf/samples_per_s"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    base = load_params().variant("dcgan").model_dump(mode="json")
    base["epochs"] = args.epochs

    def cfg(**overrides):
        return variant_from_dict({**base, **overrides})

    rows = [("plain PyTorch, 1 thread", *plain_loop(cfg(), 1)),
            ("plain PyTorch, 2 threads", *plain_loop(cfg(), 2))]
    init_ray()
    with tempfile.TemporaryDirectory() as storage:
        rows.append(("Ray Train, 1 worker x 2 CPUs", *ray_train(cfg(num_workers=1, cpus_per_worker=2), storage)))
        rows.append(("Ray Train, 2 workers x 1 CPU", *ray_train(cfg(num_workers=2, cpus_per_worker=1), storage)))
    reference = rows[1][1]
    print(f"\nDCGAN {base['g_width']}/{base['d_width']} on digits 16x16, global batch {base['batch_size']}, "
          f"{args.epochs} epochs, {torch.get_num_threads()} torch threads available\n")
    print("| setup | samples/s | vs plain (2 threads) | wall s (incl. start-up) |")
    print("|---|---|---|---|")
    for name, rate, wall in rows:
        print(f"| {name} | {rate:.0f} | {rate / reference:.2f}x | {wall:.1f} |")


if __name__ == "__main__":
    main()
