"""Time-to-quality of a plain PyTorch loop: FID and KID measured every few epochs.

Run from the repo root after `dvc repro evaluator@digits`, optionally overriding variant keys:

    python bench/plain_loop.py --variant dcgan --eval-every 25 --set epochs=300 lr_g=0.0005

For a dataset whose evaluator is not an image classifier (stacked digits, 2-D mixtures) it prints
the metrics ``evaluate@`` computes for that kind (pipeline.evaluation), e.g. Stacked MNIST:

    python bench/plain_loop.py --params profiles/pacgan.yaml --variant dcgan_stacked --set seed=1 seeds=null

On a CUDA machine: ``--device cuda``; ``--max-minutes`` stops (after an evaluation) once the wall
time is spent, so a long ``epochs`` can be given and the budget decides.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from plain import parse_overrides, plain_epochs
from pipeline.config import load_params, variant_from_dict
from pipeline.data import load_prepared
from pipeline.evaluate import image_metrics, sample_count
from pipeline.evaluation import evaluate_variant, evaluator_meta
from pipeline.evaluator import label_accuracy
from pipeline.metrics.features import load_evaluator
from pipeline.sampling import draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--params", default="params.yaml", help="params.yaml or a profile overlay")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall time")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides (YAML values)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    cfg = variant_from_dict({**params.variant(args.variant).model_dump(mode="json"), **parse_overrides(args.set)})
    data = load_prepared(f"data/prepared/{cfg.dataset}.npz")
    evaluator_dir = f"evaluators/{cfg.dataset}"
    images = evaluator_meta(evaluator_dir)["kind"] == "classifier"
    evaluator = load_evaluator(evaluator_dir) if images else None
    n = sample_count(cfg, len(evaluator.test_features)) if images else None
    started = time.perf_counter()
    for epoch, family, nets, rate in plain_epochs(cfg, data, args.device):
        out_of_time = args.max_minutes is not None and time.perf_counter() - started > 60 * args.max_minutes
        if not (epoch % args.eval_every == 0 or epoch == cfg.epochs or out_of_time):
            continue
        if not images:  # every metric evaluate@ reports for this evaluator kind
            metrics = evaluate_variant(family, nets, data.spec, evaluator_dir, data, params.evaluators[cfg.dataset])
            print(json.dumps({"epoch": epoch, "wall_s": round(time.perf_counter() - started, 1),
                              "samples_per_s": round(rate), **metrics}), flush=True)
        else:
            m = image_metrics(evaluator, draw(family, nets, n, cfg.eval.seed), cfg, n)
            if getattr(cfg, "conditional", False):  # the samples' class fidelity, as evaluate@ measures it
                labels = family.balanced_labels(n).numpy()
                samples = draw(family, nets, n, cfg.eval.seed, labels=labels)
                m["label_accuracy"] = round(label_accuracy(evaluator.model, samples, labels), 4)
            accuracy = {"label_accuracy": m["label_accuracy"]} if "label_accuracy" in m else {}
            print(json.dumps({**accuracy, "epoch": epoch, "wall_s": round(time.perf_counter() - started, 1),
                              "samples_per_s": round(rate), "fid": round(m["fid"], 3),
                              "fid_over_floor": round(m["fid_over_floor"], 2), "kid": round(m["kid_mean"], 3)}),
                  flush=True)
        if out_of_time:
            break


if __name__ == "__main__":
    main()
