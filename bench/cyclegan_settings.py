"""CycleGAN settings compared on the bare PyTorch loop: train one variant of profiles/cyclegan.yaml
with ``--set key=value`` overrides and evaluate it as `evaluate@cyclegan` does (label preservation,
FID with floors, cycle L1, both directions) every ``--every`` epochs. One thread by default, so two
settings can run side by side on 2 cores. Needs the profile's data and evaluators (in a clone whose
params.yaml is profiles/cyclegan.yaml: `dvc repro prepare@digits_to_typed evaluator@digits_to_typed`):

    python bench/cyclegan_settings.py --root CLONE --epochs 30 --every 5 --set g_downsample=1 g_blocks=2 --out r.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from plain import parse_overrides, plain_epochs  # noqa: E402
from pipeline.config import load_params, variant_from_dict  # noqa: E402
from pipeline.data import load_prepared, to_unit_range  # noqa: E402
from pipeline.evaluate import evaluate_translation  # noqa: E402
from pipeline.evaluator import label_accuracy  # noqa: E402
from pipeline.metrics.features import load_evaluator  # noqa: E402

SHOWN = ("label_preservation_ab", "label_preservation_ba", "fid_ab", "fid_ba", "cycle_l1_a", "cycle_l1_b")


def source_judged(family, nets, data, evaluator_dir: str) -> dict:
    """A diagnostic: the share of translations that the *source* domain's evaluator still gives the
    source label (is the digit still there, in the source domain's eyes?), both directions."""
    out = {}
    for direction, x, y, source in (("ab", data.x_test, data.y_test, "A"), ("ba", data.x_test_b, data.y_test_b, "B")):
        translated = family.translate(nets, to_unit_range(x), direction.upper())
        out[f"source_judged_{direction}"] = label_accuracy(load_evaluator(f"{evaluator_dir}/{source}").model,
                                                           translated, y)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="where data/ and evaluators/ are")
    parser.add_argument("--variant", default="cyclegan")
    parser.add_argument("--epochs", type=int, default=30, help="the schedule's length (lr decays over its second half)")
    parser.add_argument("--every", type=int, default=5, help="evaluate every this many epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides (YAML values)")
    parser.add_argument("--params", type=Path, default=ROOT / "profiles/cyclegan.yaml")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variant = load_params(args.params).variant(args.variant)
    overrides = parse_overrides(args.set)
    cfg = variant_from_dict({**variant.model_dump(mode="json"), **overrides, "epochs": args.epochs})
    data = load_prepared(args.root / f"data/prepared/{cfg.dataset}.npz")
    evaluator_dir = str(args.root / f"evaluators/{cfg.dataset}")
    history, started = [], time.perf_counter()
    for epoch, family, nets, rate in plain_epochs(cfg, data):
        if epoch % args.every and epoch != args.epochs:
            continue
        metrics = evaluate_translation(family, nets, data, evaluator_dir)
        row = {"epoch": epoch, "minutes": (time.perf_counter() - started) / 60, "samples_per_s": rate,
               **{key: metrics.get(key) for key in SHOWN}, **source_judged(family, nets, data, evaluator_dir)}
        history.append(row)
        print("EVAL " + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
    if args.out:
        args.out.write_text(json.dumps({"overrides": overrides, "history": history}, indent=1) + "\n")


if __name__ == "__main__":
    main()
