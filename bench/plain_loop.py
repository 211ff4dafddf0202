"""Plain PyTorch training loop on the same model and data, with FID measured along the way.

The baseline for the Ray Train numbers (samples/s and time-to-quality): no Ray, no checkpoints, no
MLflow; just ``family.train_step`` in a for-loop. Run from the repo root after `dvc repro`:

    python bench/plain_loop.py --variant dcgan --eval-every 10 [--set epochs=60 augment=[] ...]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import yaml

from pipeline.config import load_params, variant_from_dict
from pipeline.data import load_prepared, to_unit_range
from pipeline.evaluate import image_metrics, sample_count
from pipeline.families import family_for
from pipeline.families.base import StepEnv
from pipeline.metrics.features import load_evaluator
from pipeline.sampling import draw
from pipeline.train.loop import epoch_seed
from pipeline.train.sharding import ShardedBatches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides (YAML values)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    base = params.variant(args.variant).model_dump(mode="json")
    for item in args.set:
        key, value = item.split("=", 1)
        base[key] = yaml.safe_load(value)
    cfg = variant_from_dict(base)
    data = load_prepared(f"data/prepared/{cfg.dataset}.npz")
    evaluator = load_evaluator(f"evaluators/{cfg.dataset}")
    family = family_for(cfg)
    torch.manual_seed(cfg.seed)
    nets = family.build(data.spec)
    opts = family.optimizers(nets)
    batches = ShardedBatches(torch.from_numpy(to_unit_range(data.x_train)), torch.from_numpy(data.y_train),
                             cfg.batch_size, 0, 1, cfg.seed)
    env = StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda params: None)
    n = sample_count(cfg, len(evaluator.test_features))
    train_seconds, images = 0.0, 0
    for epoch in range(cfg.epochs):
        torch.manual_seed(epoch_seed(cfg.seed, 0, epoch))
        started = time.perf_counter()
        for batch in batches.epoch(epoch):
            family.train_step(nets, opts, batch, env)
            env.step += 1
            images += len(batch[0])
        train_seconds += time.perf_counter() - started
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == cfg.epochs:
            m = image_metrics(evaluator, draw(family, nets, n, cfg.eval.seed), cfg, n)
            print(json.dumps({"epoch": epoch + 1, "train_s": round(train_seconds, 1),
                              "samples_per_s": round(images / train_seconds, 1),
                              "fid": round(m["fid"], 3), "fid_over_floor": round(m["fid_over_floor"], 2),
                              "kid": round(m["kid_mean"], 3)}), flush=True)
    for net in nets.values():
        net.train()


if __name__ == "__main__":
    main()
