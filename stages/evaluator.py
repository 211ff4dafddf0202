"""evaluator@<dataset>: train the evaluator classifier and store the real reference features."""

import argparse
import logging

from _common import params_or_exit, setup_logging
from pipeline.artifacts import write_json
from pipeline.config import ConfigError
from pipeline.data import load_prepared
from pipeline.environment import describe_environment
from pipeline.evaluation import EVALUATION_KINDS
from pipeline.evaluator import build_evaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", required=True, help="prepared .npz")
    parser.add_argument("--out", required=True, help="evaluator directory to write")
    parser.add_argument("--metrics", required=True, help="JSON file for the evaluator's accuracy")
    parser.add_argument("--environment", required=True, help="JSON file for the environment it ran in")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()

    def check(params):
        if args.dataset not in params.evaluators:
            raise ConfigError([f"--dataset {args.dataset!r}: not under evaluators in {args.params}; "
                               f"allowed: {', '.join(params.evaluators)}"])

    params = params_or_exit(args.params, check)
    meta = build_evaluator(params.evaluators[args.dataset], load_prepared(args.data), args.out)
    summary = EVALUATION_KINDS[meta["kind"]].summary(meta)
    logging.info("evaluator for %s: %s", args.dataset, summary)
    write_json(args.metrics, summary)
    write_json(args.environment, describe_environment())


if __name__ == "__main__":
    main()
