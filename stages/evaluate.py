"""evaluate@<variant>: sample the trained generator(s), compute the metrics, log them to MLflow.

A variant trained with a ``seeds`` list is evaluated per seed; its metrics file holds the mean, the
spread and every seed's values, and each seed's MLflow run gets its own metrics.
"""

import argparse

from _common import ROOT, params_or_exit, setup_logging
from pipeline import tracking
from pipeline.artifacts import read_run_info, seed_model_dirs, write_json
from pipeline.data import load_prepared
from pipeline.environment import describe_environment
from pipeline.evaluate import sample_count, summarize_seeds
from pipeline.evaluation import evaluate_run
from pipeline.images import save_png
from pipeline.sampling import sample_picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--model", required=True, help="trained model directory")
    parser.add_argument("--data", required=True, help="prepared .npz of the variant's dataset")
    parser.add_argument("--evaluator", required=True, help="evaluator directory of the dataset")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--environment", required=True, help="JSON of the environment it ran in, to write")
    parser.add_argument("--samples", required=True, help="PNG of samples (of the first seed) to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    data = load_prepared(args.data)
    params = params_or_exit(args.params, lambda p: sample_count(p.variant(args.variant), len(data.x_test), args.variant))
    classifier_cfg = params.evaluators[params.variant(args.variant).dataset]  # the recipe CAS trains with

    runs = seed_model_dirs(args.model)
    per_seed = {}
    for seed, model_dir in runs.items():
        family, nets, per_seed[seed] = evaluate_run(model_dir, args.evaluator, data, classifier_cfg)
        if len(per_seed) == 1:  # the picture shows the first seed's samples
            save_png(sample_picture(family, nets, data), args.samples)
    write_json(args.metrics, summarize_seeds(per_seed))
    write_json(args.environment, describe_environment())

    for seed, model_dir in runs.items():
        logger = tracking.RunLogger(tracking.tracking_uri(ROOT), read_run_info(model_dir)["run_id"])
        logger.log_metrics({f"metric/{k}": v for k, v in per_seed[seed].items() if v is not None})
        logger.log_artifact(args.samples, "evaluation")
        logger.log_artifact(args.metrics, "evaluation")
        logger.log_artifact(args.environment, "evaluation")


if __name__ == "__main__":
    main()
