"""Cost of the bit-reproducible mode (GAN_LAB_BITWISE=1, pipeline.numerics) in training samples/s.

The default params' DCGAN on digits (16x16, batch 64) in the plain in-process loop with 2 threads,
in fresh processes (the mode's variables are read once per process), alternating mode off / on so
that a busy machine slows both alike. Run after `dvc repro prepare@digits` (or point ``--data`` at
any prepared digits .npz):

    python bench/bitwise_cost.py [--repeats 5] [--epochs 3]

Prints each run's samples/s (mean over the epochs after the first, which warms oneDNN's JIT), then
min and median per mode and the on/off ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(data: str, epochs: int, threads: int) -> None:
    """One measurement in this process: pin (if the mode is on), train, print samples/s as JSON."""
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from pipeline import numerics

    numerics.configure_torch(threads)  # what a Ray worker does with cpus_per_worker threads
    import torch

    from plain import plain_epochs
    from pipeline.config import load_params, variant_from_dict
    from pipeline.data import load_prepared

    torch.set_num_threads(threads)
    cfg = variant_from_dict({**load_params(ROOT / "params.yaml").variant("dcgan").model_dump(mode="json"),
                             "epochs": epochs})
    rates = [rate for _, _, _, rate in plain_epochs(cfg, load_prepared(data))][1:]
    print(json.dumps({"samples_per_s": sum(rates) / len(rates), "bitwise": numerics.bitwise_enabled(),
                      "deterministic": torch.are_deterministic_algorithms_enabled(),
                      "threads": torch.get_num_threads()}))


def measure(mode: bool, data: str, epochs: int, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "GAN_LAB_BITWISE"}
    env["GAN_LAB_BITWISE"] = "1" if mode else "0"
    out = subprocess.run([sys.executable, __file__, "--child", "--data", data, "--epochs", str(epochs),
                          "--threads", str(threads)], env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bitwise"] is mode and result["deterministic"] is mode, result
    return result["samples_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT / "data" / "prepared" / "digits.npz"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.data, args.epochs, args.threads)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for mode in ((False, True) if repeat % 2 == 0 else (True, False)):  # alternate which goes first
            rates[mode].append(measure(mode, args.data, args.epochs, args.threads))
            print(f"repeat {repeat + 1}, mode {'on ' if mode else 'off'}: {rates[mode][-1]:.0f} samples/s", flush=True)
    print("\n| mode | min samples/s | median samples/s | max samples/s |\n|---|---|---|---|")
    for mode in (False, True):
        print(f"| {'on' if mode else 'off'} | {min(rates[mode]):.0f} | {statistics.median(rates[mode]):.0f} "
              f"| {max(rates[mode]):.0f} |")
    print(f"\non/off ratio of the medians: {statistics.median(rates[True]) / statistics.median(rates[False]):.3f}")


if __name__ == "__main__":
    main()
