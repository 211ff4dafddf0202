"""What FID in the evaluator's feature space punishes, and whether class balance explains a GAN's gap.

Run from the repo root after `dvc repro evaluate@dcgan`:

    python bench/fid_sensitivity.py

Prints the FID of perturbed real test digits against the train reference (the floor is the
unperturbed split) and, for the trained DCGAN, FID of random vs class-balanced subsets at N = 360.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.data import as_training_array, load_prepared
from pipeline.evaluate import fid_to_reference
from pipeline.metrics.features import load_evaluator
from pipeline.sampling import draw, load_generator


def perturbations(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    checker = (np.indices(x.shape[-2:]).sum(0) % 2 * 2 - 1).astype(np.float32)
    blurred = F.avg_pool2d(F.pad(torch.from_numpy(x), (1, 1, 1, 1), mode="replicate"), 3, 1).numpy()
    other = x[rng.permutation(len(x))]
    out = {"none (the floor)": x}
    for std in (0.05, 0.1, 0.2):
        out[f"pixel noise std {std}"] = np.clip(x + std * rng.standard_normal(x.shape).astype(np.float32), -1, 1)
    out["checkerboard 0.1"] = np.clip(x + 0.1 * checker, -1, 1)
    out["contrast x 0.9"] = (x + 1) * 0.9 - 1
    out["20% blend with another digit"] = 0.8 * x + 0.2 * other
    out["shift by 1 pixel"] = np.roll(x, 1, axis=3)
    out["3x3 box blur"] = blurred
    return out


def main() -> None:
    evaluator = load_evaluator("evaluators/digits")
    x_test = as_training_array(load_prepared("data/prepared/digits.npz").x_test)
    rng = np.random.default_rng(0)
    print("| perturbation of the real test split | FID |\n|---|---|")
    for name, images in perturbations(x_test, rng).items():
        print(f"| {name} | {fid_to_reference(evaluator, evaluator.features(images.astype(np.float32))):.2f} |")

    family, nets, _ = load_generator("models/dcgan")
    samples = draw(family, nets, 4000, seed=7)
    features = evaluator.features(samples)
    with torch.no_grad():
        predicted = evaluator.model(torch.from_numpy(samples)).argmax(1).numpy()
    n, per_class = len(x_test), len(x_test) // 10
    print("\nclasses the evaluator gives 4,000 DCGAN samples:", np.bincount(predicted, minlength=10).tolist())
    for trial in range(3):
        balanced = np.concatenate([rng.choice(np.where(predicted == c)[0], per_class, replace=False) for c in range(10)])
        random = rng.choice(len(samples), n, replace=False)
        print(f"trial {trial}: FID of {n} random samples {fid_to_reference(evaluator, features[random]):.1f}, "
              f"of {per_class * 10} balanced by class {fid_to_reference(evaluator, features[balanced]):.1f}")


if __name__ == "__main__":
    main()
