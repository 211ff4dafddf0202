"""The tuned config against the default one, trained in full and evaluated as `evaluate@<variant>` does.

A search ranks configs after a short budget (``max_epochs``); this checks that its winner is also
better after the variant's full budget. Both configs train ``--seeds`` times (the per-worker loop in
process, two at a time, one CPU each) and are evaluated with the variant's own evaluation (FID, KID
at N = the test split, against evaluators/<dataset>). Prints mean +- std over seeds per config and
writes everything to ``--out``. Results: docs/tune.md.

    python bench/tuned_vs_default.py --variant dcgan --best tune/dcgan/best.json --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_params  # noqa: E402


def train_and_evaluate(variant: dict, name: str, data_path: str, evaluator_dir: str) -> dict:
    """One training run (in this process) and its evaluation."""
    import torch

    from pipeline.config import variant_from_dict
    from pipeline.data import load_prepared
    from pipeline.evaluate import evaluate_generator
    from pipeline.families import family_for
    from pipeline.metrics.features import load_evaluator
    from pipeline.train.checkpoint import load_checkpoint, restore
    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        session = LocalSession(storage)
        train_loop(TrainJob(name, variant, data_path).to_dict(), session)
        state, _, _ = load_checkpoint(session.latest_checkpoint())
    cfg = variant_from_dict(variant)
    data = load_prepared(data_path)
    family = family_for(cfg)
    nets = family.build(data.spec)
    restore(nets, family.optimizers(nets), state)
    torch.manual_seed(cfg.seed)
    metrics = evaluate_generator(family, nets, data.spec, load_evaluator(evaluator_dir))
    return {"seed": cfg.seed, "train_s": time.perf_counter() - started, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--best", default=str(ROOT / "tune" / "dcgan" / "best.json"), help="a tuning result")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: the variant's epochs")
    parser.add_argument("--out", default=str(ROOT / "docs" / "tuned_vs_default.json"))
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = params.variant(args.variant)
    best = json.loads(Path(args.best).read_text())
    base = cfg.model_copy(update={"seeds": None, "num_workers": 1, "cpus_per_worker": 1,
                                  **({"epochs": args.epochs} if args.epochs else {})})
    configs = {"default": base, "tuned": base.model_copy(update=best["best"]["config"])}
    data_path = str(ROOT / "data" / "prepared" / f"{cfg.dataset}.npz")
    evaluator_dir = str(ROOT / "evaluators" / cfg.dataset)
    with ProcessPoolExecutor(max_workers=2) as pool:  # two runs at a time, one CPU each
        futures = {(label, seed): pool.submit(train_and_evaluate, c.model_copy(update={"seed": seed}).model_dump(mode="json"),
                                              args.variant, data_path, evaluator_dir)
                   for seed in args.seeds for label, c in configs.items()}
        runs = {key: future.result() for key, future in futures.items()}
    summary = {"variant": args.variant, "epochs": base.epochs, "seeds": args.seeds, "best_json": args.best,
               "configs": {label: {k: getattr(c, k) for k in best["best"]["config"]} for label, c in configs.items()},
               "runs": {f"{label}-seed{seed}": r for (label, seed), r in runs.items()}}
    print(f"{args.variant}, {base.epochs} epochs, seeds {args.seeds}; mean +- std over seeds")
    print("| config | values | KID | FID | precision | recall | train s |")
    print("|---|---|---|---|---|---|---|")
    for label in configs:
        rows = [runs[(label, seed)] for seed in args.seeds]
        stats = {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows], ddof=1)))
                 for k in ("kid_mean", "fid", "precision", "recall", "train_s")}
        summary[label] = stats
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["configs"][label].items())
        print(f"| {label} | {values} | " + " | ".join(f"{m:.3g} +- {s:.2g}" for m, s in stats.values()) + " |")
    wins = sum(runs[("tuned", s)]["kid_mean"] < runs[("default", s)]["kid_mean"] for s in args.seeds)
    summary["tuned_wins_kid"] = f"{wins} of {len(args.seeds)} seeds"
    print(f"tuned KID lower than default in {wins} of {len(args.seeds)} seeds")
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
