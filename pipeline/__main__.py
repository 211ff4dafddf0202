"""Command line: ``python -m pipeline sample VARIANT -n N --out FILE.npz [--png FILE.png] [--label K]``.

The one place in ``pipeline/`` that parses arguments (DESIGN.md keeps CLI parsing in ``stages/``;
the issue asks for ``python -m pipeline``, so this module stays a thin shell over ``sampling``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def sample_command(args: argparse.Namespace) -> int:
    from pipeline.images import preview, save_png
    from pipeline.sampling import draw, load_generator, seed_model_dirs

    try:
        runs = seed_model_dirs(Path(args.models) / args.variant)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train_seed = next(iter(runs)) if args.train_seed is None else args.train_seed
    if train_seed not in runs:
        print(f"error: --train-seed {train_seed}: {args.variant} was trained with seeds "
              f"{', '.join(map(str, runs))}", file=sys.stderr)
        return 2
    family, nets, _ = load_generator(runs[train_seed])
    conditional = family.num_classes() > 0
    if args.label is not None and not conditional:
        print(f"error: --label {args.label}: {args.variant} is not conditional (set conditional: true)", file=sys.stderr)
        return 2
    if args.label is not None and not 0 <= args.label < family.num_classes():
        print(f"error: --label {args.label}: allowed 0 .. {family.num_classes() - 1}", file=sys.stderr)
        return 2
    if conditional:  # one class, or balanced classes
        labels = np.full(args.n, args.label) if args.label is not None else family.balanced_labels(args.n).numpy()
    else:
        labels = np.full(args.n, -1)
    samples = draw(family, nets, args.n, args.seed, labels=labels if conditional else None)
    out = Path(args.out)  # images [N, C, H, W] in [-1, 1] or points [N, 2]
    out.parent.mkdir(parents=True, exist_ok=True)
    key = "points" if samples.ndim == 2 else "images"
    np.savez(out, **{key: samples}, labels=labels.astype(np.int64))
    if args.png:
        save_png(preview(samples if samples.ndim == 2 else samples[:256]), args.png)
    print(f"wrote {len(samples)} {key} {list(samples.shape[1:])} to {out}" + (f" and {args.png}" if args.png else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="gan-lab commands")
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="draw samples from a trained variant")
    sample.add_argument("variant", help="variant name in params.yaml (its model is models/VARIANT)")
    sample.add_argument("-n", type=int, default=64, help="number of samples")
    sample.add_argument("--out", required=True,
                        help=".npz to write: images [N, C, H, W] in [-1, 1] or points [N, 2], and labels [N]")
    sample.add_argument("--png", help="also write a picture: a grid of (up to 256) images or a scatter of points")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latent draws")
    sample.add_argument("--label", type=int, help="class of every sample (conditional variants; default: "
                        "balanced classes); labels are saved beside the samples, -1 if unconditional")
    sample.add_argument("--train-seed", type=int, help="which seed's model, for a variant trained with "
                        "a seeds list (default: the first)")
    sample.add_argument("--models", default="models", help="directory holding the trained models")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"-n {args.n}: must be at least 1")
    return sample_command(args)


if __name__ == "__main__":
    sys.exit(main())
