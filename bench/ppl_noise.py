"""How noisy is perceptual path length? Its spread over evaluation seeds at 360 pairs (the FID's N)
and at 5,000 (what `evaluate@` uses), on the trained StyleGANs of a `make run PROFILE=stylegan`
(docs/stylegan.md). Run from the repository that holds models/ and evaluators/:

    python bench/ppl_noise.py .
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from pipeline.metrics.features import load_evaluator
from pipeline.sampling import load_generator
from pipeline.style_eval import perceptual_path_length


def main(root: str) -> None:
    torch.set_num_threads(2)
    evaluator = load_evaluator(f"{root}/evaluators/digits")
    for name in ("stylegan", "stylegan_no_mapping"):
        family, nets, _ = load_generator(f"{root}/models/{name}")
        G = nets[family.sampling_net_name].eval()
        for space in ("w", "z"):
            for pairs, seeds in ((360, range(10)), (5000, range(4))):
                values = [perceptual_path_length(G, evaluator, pairs, 12345 + s, space) for s in seeds]
                mean, std = np.mean(values), np.std(values, ddof=1)
                print(f"{name} {space} pairs={pairs}: mean {mean:.0f} std {std:.0f} (cv {100 * std / mean:.1f}%) "
                      f"min {min(values):.0f} max {max(values):.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
