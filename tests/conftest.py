"""Shared fixtures. Ray's loopback setting must be in the environment before ray is imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DVC_NO_ANALYTICS", "true")
# Ray Train's preemption watcher (for spot nodes) is one more actor per Train run; the suite's
# ~30 short runs on one machine don't need it.
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
# A Ray Data read that cannot get a CPU waits 30 min by default before failing; in the suite it is a
# hang, so it fails in 5 (inherited by the Ray this session starts, and so by its Data executors).
os.environ.setdefault("RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S", "300")
os.environ.pop("RAY_ADDRESS", None)          # tests always use their own embedded Ray
os.environ.pop("MLFLOW_TRACKING_URI", None)  # and their own temporary MLflow store

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The import recorder of the DVC deps check (tests/importlog/sitecustomize.py, idle unless
# GAN_LAB_IMPORT_LOG is set): on PYTHONPATH before Ray starts, so the test Ray's workers load it too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests" / "importlog"),
                                                         os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(ROOT / "stages"))
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def prepared_digits(tmp_path_factory) -> Path:
    """The real digits dataset, prepared once per test session at 16x16."""
    from pipeline.config import DatasetConfig
    from pipeline.data import prepare

    path = tmp_path_factory.mktemp("data") / "digits.npz"
    prepare(DatasetConfig(kind="digits", image_size=16), path)
    return path


@pytest.fixture(scope="session")
def prepared_ring8(tmp_path_factory) -> Path:
    """A small ring8 mixture (2,000 train / 500 test points), prepared once per test session."""
    from pipeline.config import MixtureDatasetConfig
    from pipeline.data import prepare

    path = tmp_path_factory.mktemp("data") / "ring8.npz"
    prepare(MixtureDatasetConfig(kind="ring8", n_train=2000, n_test=500), path)
    return path


@pytest.fixture(scope="session")
def evaluator_dir(prepared_digits, tmp_path_factory) -> Path:
    """A digits evaluator directory (8 epochs of the classifier), as `evaluator@digits` writes it."""
    from pipeline.config import EvaluatorConfig
    from pipeline.data import load_prepared
    from pipeline.evaluator import build_evaluator

    out = tmp_path_factory.mktemp("evaluator") / "digits"
    meta = build_evaluator(EvaluatorConfig(epochs=8), load_prepared(prepared_digits), out)
    assert meta["test_accuracy"] > 0.85
    return out


@pytest.fixture(scope="session")
def evaluator(evaluator_dir):
    """The digits evaluator with its real reference features."""
    from pipeline.metrics.features import load_evaluator

    return load_evaluator(evaluator_dir)


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray per test session (start-up costs seconds, so it is shared)."""
    import pipeline.train.ray_env  # noqa: F401  (loopback-only Ray; before `import ray`)
    import ray

    # The dashboard serves the State API that Ray Train's placement-group cleaner polls: without it the
    # placement group of an ASHA-stopped trial is never released and later trials wait for CPUs forever.
    # Port 8266, not the default 8265 that the stages a test runs in a subprocess use.
    ray.init(num_cpus=4, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=8266,
             log_to_driver=True)
    yield ray
    ray.shutdown()
