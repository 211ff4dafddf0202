"""prepare@<dataset>: build the dataset, split it, write data/prepared/<dataset>.npz (+ .json)."""

import argparse
import logging
import sys

from _common import params_or_exit, setup_logging
from pipeline.config import ConfigError
from pipeline.data import prepare
from pipeline.data.errors import DataError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, help="path of the .npz to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()

    def check(params):
        if args.dataset not in params.datasets:
            raise ConfigError([f"--dataset {args.dataset!r}: not under datasets in {args.params}; "
                               f"allowed: {', '.join(params.datasets)}"])

    params = params_or_exit(args.params, check)
    try:  # every input file is read and checked in full before anything is written
        meta = prepare(params.datasets[args.dataset], args.out)
    except DataError as err:  # bad format, truncated file, broken folder, failed download: one line
        print(f"error: datasets.{args.dataset}: {err}", file=sys.stderr)
        sys.exit(2)
    logging.info("prepared %s: %d train / %d test images, sha256 %s", args.dataset, meta["n_train"],
                 meta["n_test"], meta["sha256"])


if __name__ == "__main__":
    main()
