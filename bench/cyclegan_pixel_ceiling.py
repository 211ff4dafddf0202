"""How far apart are the two CycleGAN domains, class by class? For each test image of one domain,
its nearest training image of the other domain (pixel L2), and whether the two show the same digit.

A CycleGAN is only told to match distributions and to come back; what steers it towards keeping the
digit is its bias for small changes. If the closest image of the other domain is usually the same
digit, a small-change translation keeps the label; if not, it lands on whichever digit is nearest.
So the cross-domain nearest-neighbour agreement is a rough ceiling for what that bias alone gives.
Also after moment normalisation (each image's ink centred, scaled to a fixed spread and deskewed),
to see whether the gap is only position, size and slant. Within-domain agreement is the reference.

    python bench/cyclegan_pixel_ceiling.py --root CLONE   # after `dvc repro prepare@digits_to_typed`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.data import load_prepared  # noqa: E402


def nearest_label_agreement(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray,
                            reference_labels: np.ndarray) -> float:
    """The share of query images whose pixel-nearest reference image has the same label."""
    q, r = (torch.as_tensor(x, dtype=torch.float64).flatten(1) for x in (query, reference))
    nearest = torch.cdist(q, r).argmin(dim=1).numpy()
    return float((reference_labels[nearest] == query_labels).mean())


def moment_normalise(images: np.ndarray, spread_x: float = 0.35, spread_y: float = 0.45) -> np.ndarray:
    """Resample each image so that its ink's centre of mass is the centre, its standard deviation is
    ``spread_x``/``spread_y`` (in [-1, 1] coordinates) and its slant (the x-y covariance over the y
    variance) is removed: the classic size and deskew normalisation of digit recognisers."""
    x = torch.tensor(images, dtype=torch.float32)[:, :1] / 255.0
    n, size = len(x), x.shape[-1]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    ink = x[:, 0]
    mass = ink.sum((1, 2)) + 1e-6
    cx, cy = (ink * xs).sum((1, 2)) / mass, (ink * ys).sum((1, 2)) / mass
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    var_x, var_y = (ink * dx ** 2).sum((1, 2)) / mass, (ink * dy ** 2).sum((1, 2)) / mass
    slant = (ink * dx * dy).sum((1, 2)) / mass / var_y
    sx, sy = var_x.sqrt() / spread_x, var_y.sqrt() / spread_y
    # Output (u, v) samples the input at x = cx + sx u + slant sy v, y = cy + sy v.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = sx, slant * sy, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    grid = F.affine_grid(theta, (n, 1, size, size), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="where data/prepared/ is")
    parser.add_argument("--dataset", default="digits_to_typed")
    args = parser.parse_args()
    data = load_prepared(args.root / f"data/prepared/{args.dataset}.npz")
    results = {}
    for name, transform in (("pixels", lambda x: np.asarray(x, np.float32)), ("moment_normalised", moment_normalise)):
        a_train, a_test, b_train, b_test = (transform(x) for x in (data.x_train, data.x_test, data.x_train_b, data.x_test_b))
        results[name] = {
            "a_test_to_b_train": nearest_label_agreement(a_test, data.y_test, b_train, data.y_train_b),
            "b_test_to_a_train": nearest_label_agreement(b_test, data.y_test_b, a_train, data.y_train),
            "a_test_to_a_train": nearest_label_agreement(a_test, data.y_test, a_train, data.y_train),
            "b_test_to_b_train": nearest_label_agreement(b_test, data.y_test_b, b_train, data.y_train_b),
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
