"""GPU training: fp32 against bf16 autocast (``precision: bf16``), the plain PyTorch loop against the
pipeline's per-worker loop under Ray Train with ``use_gpu: true`` (nccl), on a CUDA machine.

Same DCGAN (the ``dcgan`` variant of params.yaml), same data and global batch everywhere. Samples/s
counts training images per second of training time (mean of the second half of the epochs). The
digits are prepared here at each image size, so nothing but a CUDA machine is needed:

    python bench/gpu.py --out docs/gpu.json            # all rows (needs ray for the Ray Train rows)
    python bench/gpu.py --no-ray                       # the plain loop only
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from plain import plain_epochs  # noqa: E402
from pipeline.config import load_params, variant_from_dict  # noqa: E402
from pipeline.data import load_prepared, prepare  # noqa: E402
from pipeline.schemas import DatasetConfig  # noqa: E402

SETUPS = [(16, 64), (64, 64), (64, 512)]  # (image size, global batch)


def plain_rate(cfg, data_path: Path, device: str) -> float:
    rates = [rate for _, _, _, rate in plain_epochs(cfg, load_prepared(data_path), device)]
    return sum(rates[len(rates) // 2:]) / len(rates[len(rates) // 2:])


def worker_probe(job: dict) -> None:
    """Each Ray Train worker: note the device and process-group backend it got, then train."""
    import torch.distributed as dist

    import ray.train
    import ray.train.torch
    from pipeline.train.launcher import ray_worker_entry

    device = ray.train.torch.get_device()
    backend = dist.get_backend() if dist.is_initialized() else "none"
    print(f"[gpu-bench] rank {ray.train.get_context().get_world_rank()}: device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), backend {backend}",
          flush=True)
    ray_worker_entry(job)


def ray_rate(cfg, data_path: Path, storage: str, name: str) -> tuple[float, float]:
    """(samples/s of the last epoch as the loop measured it, wall seconds incl. Ray's start-up)."""
    from pipeline.train.launcher import run_training
    from pipeline.train.loop import TrainJob

    started = time.perf_counter()
    job = TrainJob(name, cfg.model_dump(mode="json"), str(data_path))
    result = run_training(job, cfg, storage, name, worker_fn=worker_probe)
    return float(result.metrics["perf/samples_per_s"]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Train rows")
    parser.add_argument("--out", type=Path, help="JSON file for the rows")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "bench/gpu.py needs a CUDA GPU"
    base = load_params(Path(__file__).resolve().parents[1] / "params.yaml").variant("dcgan").model_dump(mode="json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_ray:
            import ray

            ray.init(include_dashboard=False, num_cpus=8, num_gpus=1)
        for size, batch in SETUPS:
            data_path = Path(tmp) / f"digits{size}.npz"
            prepare(DatasetConfig(kind="digits", image_size=size), data_path)
            for precision in ("fp32", "bf16"):
                cfg = variant_from_dict({**base, "epochs": args.epochs, "batch_size": batch, "use_gpu": True,
                                         "precision": precision, "cpus_per_worker": 4})
                row = {"image_size": size, "batch_size": batch, "precision": precision,
                       "plain_gpu_samples_per_s": plain_rate(cfg, data_path, "cuda")}
                if not args.no_ray:
                    rate, wall = ray_rate(cfg, data_path, tmp, f"gpu-{size}-{batch}-{precision}")
                    row.update({"ray_gpu_samples_per_s": rate, "ray_wall_s": wall,
                                "ray_vs_plain": rate / row["plain_gpu_samples_per_s"]})
                if precision == "fp32" and size == 16:
                    cpu_cfg = variant_from_dict({**base, "epochs": 3, "batch_size": batch, "cpus_per_worker": 4})
                    torch.set_num_threads(4)
                    row["plain_cpu4_samples_per_s"] = plain_rate(cpu_cfg, data_path, "cpu")
                print(json.dumps(row), flush=True)
                rows.append(row)
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
              "epochs": args.epochs, "model": {k: base[k] for k in ("g_width", "d_width", "z_dim", "augment")},
              "rows": rows}
    print("| image | batch | precision | plain GPU samples/s | Ray Train GPU samples/s | Ray/plain |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image_size']} | {r['batch_size']} | {r['precision']} | {r['plain_gpu_samples_per_s']:.0f} | "
              f"{r.get('ray_gpu_samples_per_s', float('nan')):.0f} | {r.get('ray_vs_plain', float('nan')):.2f} |")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
