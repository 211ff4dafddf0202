"""What the per-worker loop costs over a bare PyTorch loop, in process (no Ray): checkpoints every
epoch and history, then also the per-step MLflow logging into a temporary SQLite store.

Same variant, data, seed and epochs in all three; one thread. Small MLP steps show the overhead most:

    python bench/loop_overhead.py --params profiles/pacgan.yaml --variant gan_ns_grid --epochs 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from plain import plain_epochs
from pipeline import tracking
from pipeline.config import load_params
from pipeline.data import load_prepared, prepare
from pipeline.train.loop import TrainJob, train_loop
from pipeline.train.session import LocalSession


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--variant", default="gan_ns")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(args.params)
    cfg = params.variant(args.variant)
    cfg = cfg.for_seed(cfg.run_seeds()[0]).model_copy(update={"epochs": args.epochs, "cpus_per_worker": 1})
    work = Path(tempfile.mkdtemp(prefix="loop-overhead-"))
    data_path = work / "data.npz"
    prepare(params.datasets[cfg.dataset], data_path)
    job = TrainJob(args.variant, cfg.model_dump(mode="json"), str(data_path))

    plain = timed(lambda: [None for _ in plain_epochs(cfg, load_prepared(data_path))])
    loop = timed(lambda: train_loop(job.to_dict(), LocalSession(work / "ckpt-loop")))
    uri = tracking.tracking_uri(work)
    run_id = tracking.start_run(uri, tracking.ensure_experiment(uri, work), args.variant, {}, {})
    logged_job = TrainJob(args.variant, cfg.model_dump(mode="json"), str(data_path), uri, run_id)
    logged = timed(lambda: train_loop(logged_job.to_dict(), LocalSession(work / "ckpt-logged")))
    steps = args.epochs * (len(load_prepared(data_path).x_train) // cfg.batch_size)
    print(f"{args.variant}, {steps} steps: plain loop {plain:.1f} s, our loop {loop:.1f} s "
          f"({loop / plain:.2f}x), our loop + MLflow {logged:.1f} s ({logged / plain:.2f}x)")


if __name__ == "__main__":
    main()
