"""Training throughput: Ray Train (1 and 2 workers) against a plain PyTorch loop on the same model.

Same model, data, global batch and number of epochs everywhere. Samples/s counts training images
per second of training time (the last epochs' mean); wall time includes Ray's start-up and the
per-epoch checkpoints. Run after `dvc repro prepare@digits` (the default DCGAN), or for another
family's variant, after preparing its dataset in ROOT:

    python bench/throughput.py [--epochs 10]
    python bench/throughput.py --params profiles/stylegan.yaml --variant stylegan \
        --set phase_images=2000 fade_images=2000   # at 16x16 from the 5th epoch on
    python bench/throughput.py --params profiles/cyclegan.yaml --variant cyclegan --root CLONE
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from plain import parse_overrides, plain_epochs
from pipeline.config import load_params, variant_from_dict
from pipeline.data import load_prepared
from pipeline.train.launcher import init_ray, run_training
from pipeline.train.loop import TrainJob


def plain_loop(cfg, data: Path, threads: int) -> tuple[float, float]:
    """(samples/s over the last half of the epochs, wall seconds) of the bare PyTorch loop."""
    torch.set_num_threads(threads)
    started = time.perf_counter()
    rates = [rate for _, _, _, rate in plain_epochs(cfg, load_prepared(data))]
    half = rates[len(rates) // 2:]
    return sum(half) / len(half), time.perf_counter() - started


def ray_train(cfg, data: Path, storage: str) -> tuple[float, float]:
    started = time.perf_counter()
    job = TrainJob("bench", cfg.model_dump(mode="json"), str(data))
    result = run_training(job, cfg, storage, f"bench-{cfg.num_workers}x{cfg.cpus_per_worker}")
    return result.metrics["perf/samples_per_s"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--root", type=Path, default=Path("."), help="where data/prepared/ is")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides of the variant (YAML values)")
    args = parser.parse_args()
    variant = load_params(args.params).variant(args.variant)
    data = (args.root / "data" / "prepared" / f"{variant.dataset}.npz").resolve()
    base = {**variant.model_dump(mode="json"), **parse_overrides(args.set), "epochs": args.epochs}

    def cfg(**overrides):
        return variant_from_dict({**base, **overrides})

    rows = [("plain PyTorch, 1 thread", *plain_loop(cfg(), data, 1)),
            ("plain PyTorch, 2 threads", *plain_loop(cfg(), data, 2))]
    init_ray()
    with tempfile.TemporaryDirectory() as storage:
        for workers, cpus in ((1, 2), (2, 1)):
            rows.append((f"Ray Train, {workers} worker{'s' * (workers > 1)} x {cpus} CPU{'s' * (cpus > 1)}",
                         *ray_train(cfg(num_workers=workers, cpus_per_worker=cpus), data, storage)))
    reference = rows[1][1]
    print(f"\n{args.variant} ({base['family']}, widths {base['g_width']}/{base['d_width']}) on {base['dataset']}, "
          f"global batch {base['batch_size']}, {args.epochs} epochs, {torch.get_num_threads()} torch threads available\n")
    print("| setup | samples/s | vs plain (2 threads) | wall s (incl. start-up) |")
    print("|---|---|---|---|")
    for name, rate, wall in rows:
        print(f"| {name} | {rate:.0f} | {rate / reference:.2f}x | {wall:.1f} |")


if __name__ == "__main__":
    main()
