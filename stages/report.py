"""report: one HTML page and one Markdown summary comparing every variant; logged to MLflow."""

import argparse
import logging
from pathlib import Path

from _common import ROOT, params_or_exit, setup_logging
from pipeline import tracking
from pipeline.artifacts import read_json
from pipeline.report import build_sections, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, help="directory of metrics/<variant>.json")
    parser.add_argument("--samples", required=True, help="directory of samples/<variant>.png")
    parser.add_argument("--plots", required=True, help="directory of plots/train/<variant>.csv")
    parser.add_argument("--tune", help="directory of tune/<variant>/best.json (the tuning results)")
    parser.add_argument("--out", required=True, help="report directory to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    setup_logging()
    params = params_or_exit(args.params, lambda p: None)
    metrics_dir = Path(args.metrics)
    evaluator_metrics = {name: read_json(metrics_dir / f"evaluator_{name}.json")
                         for name in params.evaluators if (metrics_dir / f"evaluator_{name}.json").is_file()}
    sections = build_sections(params, metrics_dir, Path(args.samples), Path(args.plots), evaluator_metrics,
                              Path(args.tune) if args.tune else None)
    write_report(sections, Path(args.out))
    run_id = tracking.log_report(ROOT, args.out)
    logging.info("report written to %s (MLflow run %s)", args.out, run_id)


if __name__ == "__main__":
    main()
