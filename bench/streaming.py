"""Streaming a train split from Parquet shards through Ray Data, against the in-memory path.

(a) Memory: train one epoch on a generated stacked-digits split several times larger than the
    Train workers' peak RSS (read in each worker with ``resource.getrusage`` when it finishes), with
    Ray's object store capped, so neither the workers nor the object store can hold the split. A
    small MLP GAN keeps the run data-bound. The in-memory path would hold the split as float32 in
    every worker (4 bytes a pixel, next to the uint8 copy).
(b) Speed: samples/s of the same small DCGAN on a split that fits, in memory and streamed (the
    loop's ``perf/samples_per_s`` of the last epoch: data waits included), on the same Ray.

Everything runs on an embedded Ray of ``--cpus`` CPUs (2 here: Train workers get fewer CPUs when
streaming so Ray Data's tasks get one). Not a timed test:

    python bench/streaming.py --large-rows 700000 --small-rows 60000 --out docs/streaming.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from pipeline.config import StackedDigitsConfig, parse_params
from pipeline.data import prepare
from pipeline.train.launcher import ray_worker_entry, run_training
from pipeline.train.loop import TrainJob

MB = 1e6


def rss_recording_worker(out_dir: str):
    """Ray Train worker: the real entry point, then this process's peak RSS and peak USS written to
    ``out_dir``. RSS counts the pages of Ray's shared-memory object store the worker has mapped
    (blocks it reads zero-copy, owned by the store, capped by ``--object-store-mb``); USS (sampled
    every 0.2 s with psutil) is the memory the worker itself holds."""

    def worker(job: dict) -> None:
        import os
        import threading

        import psutil

        peak_uss, done = [0], threading.Event()

        def sample() -> None:
            process = psutil.Process()
            while not done.wait(0.2):
                peak_uss[0] = max(peak_uss[0], process.memory_full_info().uss)

        threading.Thread(target=sample, daemon=True).start()
        try:
            ray_worker_entry(job)
        finally:
            done.set()
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
        Path(out_dir, f"rss-{os.getpid()}.txt").write_text(f"{peak_kb * 1024} {peak_uss[0]}")

    return worker


def dataset(root: Path, name: str, rows: int, size: int, storage: str) -> tuple[Path, float]:
    """A stacked-digits split of ``rows`` rows at ``size`` x ``size`` (3 channels); (path, seconds)."""
    started = time.perf_counter()
    cfg = StackedDigitsConfig(kind="stacked_digits", image_size=size, n_train=rows, n_test=500, storage=storage)
    prepare(cfg, root / f"{name}.npz")
    return root / f"{name}.npz", time.perf_counter() - started


def train(root: Path, data: Path, variant: dict, name: str) -> dict:
    """One Ray Train run; returns the last report's metrics, wall seconds and the workers' peak RSS."""
    raw = {"datasets": {"d": {"kind": "stacked_digits", "image_size": 8}}, "evaluators": {"d": {}},
           "variants": {name: {**variant, "dataset": "d"}}}
    cfg = parse_params(raw).variant(name)
    job = TrainJob(name, cfg.model_dump(mode="json"), str(data))
    rss_dir = Path(tempfile.mkdtemp(dir=root))
    started = time.perf_counter()
    result = run_training(job, cfg, str(root / "ray"), name, rss_recording_worker(str(rss_dir)))
    peaks = [[int(v) for v in p.read_text().split()] for p in rss_dir.glob("rss-*.txt")]
    return {"metrics": dict(result.metrics), "wall_s": time.perf_counter() - started,
            "worker_peak_rss_mb": [round(rss / MB) for rss, _ in peaks],
            "worker_peak_uss_mb": [round(uss / MB) for _, uss in peaks]}


def memory_case(root: Path, rows: int, workers: int) -> dict:
    data, seconds = dataset(root, "large", rows, 32, "stream")
    shards = sum(p.stat().st_size for p in (root / "large.shards").glob("*.parquet"))
    variant = {"family": "gan", "epochs": 1, "batch_size": 512, "num_workers": workers, "z_dim": 16,
               "g_hidden": 64, "g_layers": 2, "d_hidden": 64, "d_layers": 2, "compare_losses": False}
    run = train(root, data, variant, "large")
    pixels = rows * 3 * 32 * 32
    return {"rows": rows, "uint8_mb": round(pixels / MB), "float32_mb": round(4 * pixels / MB),
            "parquet_mb": round(shards / MB), "prepare_s": round(seconds, 1), "workers": workers,
            "steps": run["metrics"]["step"], "samples_per_s": round(run["metrics"]["perf/samples_per_s"]),
            "wall_s": round(run["wall_s"], 1), "worker_peak_rss_mb": run["worker_peak_rss_mb"],
            "worker_peak_uss_mb": run["worker_peak_uss_mb"],
            "split_over_peak_rss": round(pixels / MB / max(run["worker_peak_rss_mb"]), 2),
            "split_over_peak_uss": round(pixels / MB / max(run["worker_peak_uss_mb"]), 2)}


def speed_case(root: Path, rows: int, workers: int, epochs: int) -> dict:
    variant = {"family": "dcgan", "epochs": epochs, "batch_size": 64, "num_workers": workers, "z_dim": 16,
               "g_width": 16, "d_width": 16, "augment": [], "ema_decay": 0.0}
    out = {"rows": rows, "workers": workers, "epochs": epochs}
    for storage in ("memory", "stream"):
        data, _ = dataset(root, f"small_{storage}", rows, 16, storage)
        run = train(root, data, variant, f"small_{storage}")
        out[storage] = {"samples_per_s": round(run["metrics"]["perf/samples_per_s"]), "wall_s": round(run["wall_s"], 1),
                        "worker_peak_rss_mb": run["worker_peak_rss_mb"], "worker_peak_uss_mb": run["worker_peak_uss_mb"]}
    out["stream_over_memory"] = round(out["stream"]["samples_per_s"] / out["memory"]["samples_per_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large-rows", type=int, default=700_000, help="(a) rows at 3x32x32 (3,072 bytes each)")
    parser.add_argument("--small-rows", type=int, default=60_000, help="(b) rows at 3x16x16")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="(b) epochs; the last one is measured")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray")
    parser.add_argument("--object-store-mb", type=int, default=400, help="cap on Ray's object store")
    parser.add_argument("--skip", choices=["memory", "speed"], help="run only the other case")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args()

    import pipeline.train.ray_env  # noqa: F401  (before `import ray`)
    import ray

    ray.init(num_cpus=args.cpus, object_store_memory=int(args.object_store_mb * MB), include_dashboard=False)
    results = {"cpus": args.cpus, "object_store_mb": args.object_store_mb}
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        if args.skip != "memory":
            results["memory"] = memory_case(Path(tmp), args.large_rows, args.workers)
            print(json.dumps(results["memory"]), flush=True)
        if args.skip != "speed":
            results["speed"] = speed_case(Path(tmp), args.small_rows, args.workers, args.epochs)
            print(json.dumps(results["speed"]), flush=True)
    ray.shutdown()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
