"""Wall time of precision/recall and density/coverage (pipeline.metrics.prdc) on 50,000 real x 50,000
generated features of dimension 64 (the size of a full FID-50k evaluation), with the torch threads
the machine has. The features are Gaussian (two slightly shifted clouds): the time depends on the
sizes, not on the values.

    python bench/prdc_50k.py            # --n 50000 --dim 64 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pipeline.metrics.prdc import prdc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    fake = rng.standard_normal((args.n, args.dim), dtype=np.float32) + np.float32(0.1)
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = prdc(real, fake)
        seconds = time.perf_counter() - started
        print(json.dumps({"n": args.n, "dim": args.dim, "threads": torch.get_num_threads(),
                          "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
    main()
