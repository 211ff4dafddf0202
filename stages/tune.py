"""tune@<variant>: the variant's Ray Tune search (params ``tune.<variant>``), tracked in MLflow.

Writes ``<out>/best.json`` and ``<out>/trials.csv``. The prepared data and the evaluator are found by
the variant's dataset name inside ``--prepared`` and ``--evaluators`` (DVC cannot interpolate the
variant's dataset into a stage that iterates over ``tune``).
"""

import argparse
import logging
import sys
from pathlib import Path

from _common import ROOT, params_or_exit, setup_logging
from pipeline.config import ConfigError, Params
from pipeline import tracking
from pipeline.data import load_prepared
from pipeline.train.driver import gpu_problems
from pipeline.tune.checks import pbt_shape_problems


def check(params: Params, variant: str, prepared: Path, evaluators: Path) -> None:
    if variant not in params.tune:
        raise ConfigError([f"params.yaml: tune.{variant}: not declared; tuned variants: "
                           f"{', '.join(params.tune) or '(none)'}"])
    dataset = params.variant(variant).dataset
    for path in (prepared / f"{dataset}.npz", evaluators / dataset / "meta.json"):
        if not path.is_file():
            raise ConfigError([f"{path}: missing; run `dvc repro prepare@{dataset} evaluator@{dataset}` first"])
    if problem := tracking.server_problem(tracking.tracking_uri(ROOT)):
        raise ConfigError([problem])
    if problems := gpu_problems(params.variant(variant), variant):  # every trial trains with use_gpu
        raise ConfigError(problems)
    if params.tune[variant].scheduler == "pbt":
        problems = pbt_shape_problems(params, variant, load_prepared(prepared / f"{dataset}.npz").spec)
        if problems:
            raise ConfigError(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--prepared", required=True, help="directory of the prepared .npz datasets")
    parser.add_argument("--evaluators", required=True, help="directory of the datasets' evaluators")
    parser.add_argument("--out", required=True, help="directory to write best.json and trials.csv to")
    parser.add_argument("--storage", default=".ray_runs", help="Ray Tune storage (trial checkpoints)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    prepared, evaluators = Path(args.prepared), Path(args.evaluators)
    params = params_or_exit(args.params, lambda p: check(p, args.variant, prepared, evaluators))
    from pipeline.tune.search import TuningInterrupted, tune_variant  # imports ray: once params are valid

    dataset = params.variant(args.variant).dataset
    try:
        summary = tune_variant(params, args.variant, prepared / f"{dataset}.npz", evaluators / dataset,
                               Path(args.out), Path(args.storage), ROOT)
    except TuningInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(130)
    logging.info("tuned %s: best %s", args.variant, summary["best"])


if __name__ == "__main__":
    main()
