"""evaluate@<variant>: sample the trained generator, compute its metrics, log them to its MLflow run."""

import argparse
import json
from pathlib import Path

import numpy as np

from _common import ROOT, params_or_exit, setup_logging
from pipeline import tracking
from pipeline.data import load_prepared
from pipeline.evaluate import evaluate_variant, sample_count
from pipeline.images import preview, save_png, scatter_points
from pipeline.sampling import draw, load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--model", required=True, help="trained model directory")
    parser.add_argument("--data", required=True, help="prepared .npz of the variant's dataset")
    parser.add_argument("--evaluator", required=True, help="evaluator directory of the dataset")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--samples", required=True, help="PNG of samples to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    data = load_prepared(args.data)
    params_or_exit(args.params, lambda p: sample_count(p.variant(args.variant), len(data.x_test), args.variant))

    family, nets, spec = load_generator(args.model)
    metrics = evaluate_variant(family, nets, spec, args.evaluator, data.x_test)
    if spec.point_dim:
        picture = scatter_points(draw(family, nets, 2500, seed=0), np.asarray(data.meta["modes"]))
    else:
        picture = preview(draw(family, nets, 64, seed=0))
    save_png(picture, args.samples)
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")

    run = json.loads((Path(args.model) / "run.json").read_text())
    logger = tracking.RunLogger(tracking.tracking_uri(ROOT), run["run_id"])
    logger.log_metrics({f"metric/{k}": v for k, v in metrics.items() if v is not None})
    logger.log_artifact(args.samples, "evaluation")
    logger.log_artifact(args.metrics, "evaluation")


if __name__ == "__main__":
    main()
