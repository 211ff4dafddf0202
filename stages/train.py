"""train@<variant>: train one variant with Ray Train and log it to MLflow."""

import argparse
import logging
import os
import sys
from pathlib import Path

from _common import ROOT, params_or_exit, setup_logging
from pipeline.config import ConfigError, Params
from pipeline.artifacts import read_json
from pipeline.data import meta_path
from pipeline.train.driver import TrackingUnavailable, TrainingDiverged, check_runtime, train_variant
from pipeline.train.storage import STORAGE_ENV, cluster_storage_problems


def check(params: Params, variant: str, storage: str, n_train: int | None) -> None:
    """Storage a cluster cannot share (before Ray is joined), then the runtime checks of the driver."""
    if problems := cluster_storage_problems(storage):
        raise ConfigError(problems)
    check_runtime(params, variant, ROOT, n_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--data", required=True, help="prepared .npz of the variant's dataset")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--plots", required=True, help="CSV of per-step scalars to write")
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV, ".ray_runs"),
                        help=f"Ray Train storage (checkpoints): a path every node reaches or a URI such as "
                             f"s3://bucket/runs; default ${STORAGE_ENV} or .ray_runs")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    meta = meta_path(args.data)
    sizes = read_json(meta) if meta.is_file() else None  # two domains: the smaller fills a batch
    n_train = min(sizes["n_train"], sizes.get("n_train_b", sizes["n_train"])) if sizes else None
    params = params_or_exit(args.params, lambda p: check(p, args.variant, args.storage, n_train))
    try:
        metrics = train_variant(params, args.variant, Path(args.data), Path(args.out), Path(args.plots),
                                args.storage, ROOT)  # a string: Path() would mangle s3://bucket into s3:/bucket
    except TrainingDiverged as err:  # the outputs were left as they were; the reason is one line
        print(f"error: {err.reason}", file=sys.stderr)
        sys.exit(1)
    except TrackingUnavailable as err:  # MLflow down at the end: outputs as they were, checkpoints kept
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    logging.info("trained %s: %s", args.variant, metrics)


if __name__ == "__main__":
    main()
