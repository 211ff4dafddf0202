"""StyleGAN against the DCGAN at the same wall-clock budget, and the mapping-network ablation.

Each model trains with the bare PyTorch loop (bench/plain.py: the same family code and batches as
the pipeline, no Ray) for ``--minutes`` of training time on this machine, with ``--threads`` torch
threads, then is evaluated as `evaluate@<variant>` does (FID, KID at N = the test split against
evaluators/digits) plus, for StyleGANs, perceptual path length, the truncation sweep and the
style-mixing class-following rates (pipeline.style_eval). Models: the ``stylegan`` and
``stylegan_no_mapping`` (z straight into AdaIN) variants of profiles/stylegan.yaml and the ``dcgan``
of params.yaml (the default DCGAN; ``--dcgan-params profiles/stylegan.yaml`` for the profile's),
all on ``--dataset`` (default: the default real MNIST). Run after `dvc repro evaluator@mnist`:

    python bench/stylegan_vs_dcgan.py --minutes 7 --set seed=1 --out /tmp/seed1.json

(The 16x16 digits comparison of 2026-11-29: ``--dataset digits --dcgan-params profiles/stylegan.yaml
--minutes 6``, after `dvc repro evaluator@digits`.)

``--epochs N`` trains each model N epochs instead (to compare settings at equal training, e.g. two
runs side by side with ``--threads 1``); ``--set key=value`` overrides a key of every listed model:

    python bench/stylegan_vs_dcgan.py --models stylegan --threads 1 --epochs 227 --set mapping_lr_mult=1.0

``--eval-at 100 200`` also evaluates after those epochs (kept under "during" in the output).
"""

from __future__ import annotations

import argparse
import copy
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
from pipeline.data import load_prepared  # noqa: E402
from pipeline.evaluate import evaluate_generator  # noqa: E402
from pipeline.metrics.features import load_evaluator  # noqa: E402
from pipeline.style_eval import style_metrics  # noqa: E402


SHOWN = ("fid", "fid_G", "fid_floor", "kid_mean", "ppl_w", "ppl_z", "mix_follows_coarse")


def evaluate(family, nets, data, evaluator, also_g: bool = False) -> dict:
    """What `evaluate@<variant>` reports (FID, KID, PR/DC), plus the StyleGAN metrics for StyleGANs;
    ``also_g``: the FID of G's own samples too (``fid_G``; the rest are G_ema's)."""
    metrics = evaluate_generator(family, nets, data.spec, evaluator)
    if also_g:
        # A copy: sampling re-estimates BatchNorm statistics and leaves the net in eval mode.
        metrics["fid_G"] = evaluate_generator(family, {**nets, "G_ema": copy.deepcopy(nets["G"])}, data.spec,
                                              evaluator)["fid"]
    if family.cfg.family == "stylegan":
        metrics.update(style_metrics(family, nets, evaluator, metrics["n_samples"], family.cfg.eval.seed))
    return {k: metrics[k] for k in metrics if not k.startswith("precision_floor")}


def train_for(cfg, data, minutes: float | None, on_epoch=None) -> tuple[object, dict, dict]:
    """Train until ``minutes`` of training time have passed (whole epochs), or for ``cfg.epochs``
    when ``minutes`` is None, calling ``on_epoch(epoch, family, nets)`` after each epoch (its time
    is not counted as training); returns (family, nets, info)."""
    elapsed = 0.0
    started = time.perf_counter()
    for epoch, family, nets, rate in plain_epochs(cfg, data):
        elapsed += time.perf_counter() - started
        if minutes is not None and elapsed >= minutes * 60:
            break
        if on_epoch is not None:
            on_epoch(epoch, family, nets)
        started = time.perf_counter()
    info = {"epochs": epoch, "train_seconds": elapsed, "images": epoch * (len(data.x_train) // cfg.batch_size)
            * cfg.batch_size, "last_epoch_samples_per_s": rate}
    if cfg.family == "stylegan":
        info["growth"] = list(nets["G_ema"].growth)
    return family, nets, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=6.0, help="training time per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["dcgan", "stylegan", "stylegan_no_mapping"])
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of --minutes")
    parser.add_argument("--eval-at", nargs="*", type=int, default=[], help="also evaluate after these epochs")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides (YAML values) for every model")
    parser.add_argument("--params", type=Path, default=ROOT / "profiles/stylegan.yaml")
    parser.add_argument("--dcgan-params", type=Path, default=ROOT / "params.yaml", help="where the dcgan variant is")
    parser.add_argument("--dataset", default="mnist", help="a prepared dataset with an evaluator")
    parser.add_argument("--also-g", action="store_true", help="also the FID of G's own samples (fid_G)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_prepared(ROOT / f"data/prepared/{args.dataset}.npz")
    evaluator = load_evaluator(ROOT / f"evaluators/{args.dataset}")
    overrides = {"dataset": args.dataset, **parse_overrides(args.set)}
    configs = {name: {**load_params(args.dcgan_params if name == "dcgan" else args.params).variant(name)
                      .model_dump(mode="json"), **overrides} for name in args.models}
    epochs = args.epochs or 100_000  # without --epochs, stopped by the clock
    results = {}
    for name in args.models:
        cfg = variant_from_dict({**configs[name], "epochs": epochs})
        during = {}

        def evaluate_at(epoch, family, nets):  # the trajectory, at the --eval-at epochs
            if epoch in args.eval_at:
                during[epoch] = evaluate(family, nets, data, evaluator, args.also_g)
                print(json.dumps({name: {"epoch": epoch, **{k: during[epoch].get(k) for k in SHOWN}}}), flush=True)

        family, nets, info = train_for(cfg, data, None if args.epochs else args.minutes, evaluate_at)
        results[name] = {**info, **evaluate(family, nets, data, evaluator, args.also_g), **({"during": during} if during else {})}
        print(json.dumps({name: {k: results[name].get(k) for k in ("epochs", "train_seconds", *SHOWN)}}), flush=True)
    report = {"minutes": None if args.epochs else args.minutes, "epochs": args.epochs, "threads": args.threads,
              "configs": configs, "results": results}
    if "dcgan" in results and "stylegan" in results:
        report["fid_ratio_stylegan_over_dcgan"] = results["stylegan"]["fid"] / results["dcgan"]["fid"]
    print(json.dumps({k: v for k, v in report.items() if k != "configs"}, indent=2, default=str))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
