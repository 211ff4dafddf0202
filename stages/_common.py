"""Shared by the stage entry points: logging set-up and params loading with the exit-2 contract."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import the pipeline package that sits beside these stages (the code DVC tracks as deps), even if
# another copy of the repository is installed in the environment.
sys.path.insert(0, str(ROOT))

from pipeline import numerics  # noqa: E402

# GAN_LAB_BITWISE=1: pin oneDNN/MKL/ATen's instruction set, deterministic algorithms and the thread
# count before any stage computes (the libraries read their settings once, at first use).
numerics.configure_torch()

from pipeline.config import ConfigError, Params, load_params  # noqa: E402
from pipeline.redact import mask_credentials  # noqa: E402


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def params_or_exit(path: str = "params.yaml", check=None) -> Params:
    """Load params; on any problem print one line each to stderr and exit 2 before any work
    (a password inside a URI the line names, e.g. MLFLOW_TRACKING_URI, is masked)."""
    try:
        params = load_params(path)
        if check is not None:
            check(params)
        return params
    except ConfigError as err:
        for line in err.problems:
            print(f"error: {mask_credentials(line)}", file=sys.stderr)
        sys.exit(2)
