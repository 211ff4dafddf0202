"""Where do the perceptual path lengths of docs/stylegan.md come from? PPL split by the classes of
each path's two ends, and PPL under two other distances, on the trained StyleGANs of a
`make run PROFILE=stylegan` (run from the repository that holds models/ and evaluators/):

    python bench/ppl_by_class.py . [--pairs 5000] [--seed 12345]

For each generator and space (W: lerp between w, Z: slerp between z) it draws the paths `evaluate@`
draws (pipeline.style_eval.path_images) and reports, with the 1st-99th percentile kept as in PPL:

- ``ppl``: the official distance (squared distance of the evaluator's 64 features), all paths, and
  split into paths whose two ends the evaluator gives the same digit and paths between two digits;
- ``pixels``: the squared pixel distance (images in [-1, 1]), no network at all;
- ``lpips_like``: LPIPS's recipe on the evaluator's three convolution layers (each position's
  activations scaled to unit length over the channels, squared differences summed over channels,
  averaged over positions, summed over layers; uniform weights, since LPIPS's learned ones are for
  VGG on photographs). Lower layers see strokes rather than classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.evaluator import predict_labels  # noqa: E402
from pipeline.metrics.features import load_evaluator  # noqa: E402
from pipeline.sampling import load_generator  # noqa: E402
from pipeline.style_eval import path_images, trimmed_mean  # noqa: E402

EPS = 1e-4  # the eps of evaluate@'s PPL


@torch.no_grad()
def conv_activations(model, images: np.ndarray) -> list[torch.Tensor]:
    """The evaluator's activations after each convolution's ReLU, each [N, C, H, W]."""
    x, out = torch.as_tensor(images, dtype=torch.float32), []
    for layer in model.backbone:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU) and x.dim() == 4:
            out.append(x)
    return out


def lpips_like(model, a: np.ndarray, b: np.ndarray, batch: int = 1000) -> np.ndarray:
    """sum over layers l of mean over positions of |u_l(a) - u_l(b)|^2, u_l the activations scaled to
    unit length over the channels at each position (LPIPS, Zhang et al. 2018, eq. 1 with w_l = 1)."""
    unit = lambda x: x / (x.norm(dim=1, keepdim=True) + 1e-10)  # noqa: E731
    out = []
    for i in range(0, len(a), batch):
        pairs = zip(conv_activations(model, a[i:i + batch]), conv_activations(model, b[i:i + batch]))
        out.append(sum(((unit(x) - unit(y)) ** 2).sum(dim=1).mean(dim=(1, 2)) for x, y in pairs).double().numpy())
    return np.concatenate(out)


def path_lengths(G, evaluator, pairs: int, seed: int, space: str) -> dict:
    a, b, end1, end2 = path_images(G, pairs, seed, space, EPS, with_ends=True)
    same = predict_labels(evaluator.model, end1) == predict_labels(evaluator.model, end2)
    distances = {"ppl": ((evaluator.features(a) - evaluator.features(b)) ** 2).sum(axis=1),
                 "pixels": ((a - b) ** 2).reshape(len(a), -1).sum(axis=1).astype(np.float64),
                 "lpips_like": lpips_like(evaluator.model, a, b)}
    row = {"same_class_ends": float(same.mean())}
    for name, d in distances.items():
        d = d / EPS ** 2
        low, high = np.percentile(d, [1, 99])
        kept = (d >= low) & (d <= high)  # one trim over all paths, then the groups' means
        row[name] = trimmed_mean(d)
        if name == "ppl":
            row["ppl_same_class"] = float(d[kept & same].mean())
            row["ppl_two_classes"] = float(d[kept & ~same].mean())
            row["ppl_share_from_two_classes"] = float(d[kept & ~same].sum() / d[kept].sum())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--models", nargs="+", default=["stylegan", "stylegan_no_mapping"])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    evaluator = load_evaluator(args.root / "evaluators/digits")
    evaluator.model.eval()
    results = {}
    for name in args.models:
        family, nets, _ = load_generator(args.root / "models" / name)
        G = nets[family.sampling_net_name].eval()
        for space in ("w", "z"):
            results[f"{name}/{space}"] = path_lengths(G, evaluator, args.pairs, args.seed, space)
            print(json.dumps({f"{name}/{space}": results[f"{name}/{space}"]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"pairs": args.pairs, "seed": args.seed, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
