"""Evaluate a trained variant against its dataset's evaluator (DESIGN.md section 5).

Images: all metrics are measured at one N (the size of the test split unless ``eval.n_samples`` is
smaller): generated samples and the real test split are each compared with the real train split,
so the real-vs-real value is the floor a generator can reach at that N. An untrained generator of
the same architecture is measured too, as the ceiling. 2-D mixtures: the PacGAN mode metrics on N
samples (2,500 by default, the size of the test split), with the real test points as the floor.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ConfigError, TrainingConfig
from pipeline.data import DataSpec
from pipeline.families import Family, Nets, family_for
from pipeline.metrics import feature_stats, frechet_distance, kid
from pipeline.metrics.features import Evaluator, load_evaluator
from pipeline.metrics.modes import mode_metrics
from pipeline.sampling import draw

log = logging.getLogger(__name__)


def fid_to_reference(evaluator: Evaluator, features: np.ndarray) -> float:
    """FID of ``features`` [N, d] against the stored statistics of the real train split."""
    return frechet_distance(*feature_stats(features), evaluator.train_mu, evaluator.train_cov)


def sample_count(cfg: TrainingConfig, n_test: int, variant: str = "<variant>") -> int:
    """N for every metric of this variant; the floor needs N real held-out images, so N <= n_test."""
    n = cfg.eval.n_samples or n_test
    if n > n_test:
        raise ConfigError([f"params.yaml: variants.{variant}.eval.n_samples = {n}: at most the test split "
                           f"size ({n_test}), since the real-vs-real floor is measured at the same N"])
    return n


def untrained_samples(family: Family, spec: DataSpec, n: int) -> np.ndarray:
    """``n`` samples of a freshly initialised generator of the same variant (the ceiling of a metric)."""
    cfg = family.cfg
    torch.manual_seed(cfg.seed)
    untrained = family_for(cfg)
    return draw(untrained, untrained.build(spec), n, cfg.eval.seed)


def image_metrics(evaluator: Evaluator, generated: np.ndarray, cfg: TrainingConfig, n: int) -> dict:
    """FID and KID of ``generated`` [n, C, H, W] and of the real test split against the train split."""
    e = cfg.eval
    real = evaluator.train_features
    gen_f = evaluator.features(generated)
    test_f = evaluator.test_features[:n]
    kid_mean, kid_std = kid(real, gen_f, e.kid_subsets, e.kid_subset_size, e.seed)
    floor_mean, floor_std = kid(real, test_f, e.kid_subsets, e.kid_subset_size, e.seed)
    fid_value, fid_floor = fid_to_reference(evaluator, gen_f), fid_to_reference(evaluator, test_f)
    return {
        "fid": fid_value, "fid_floor": fid_floor,
        # The floor is > 0 for any real evaluator; an untrained one can collapse every feature to 0.
        "fid_over_floor": fid_value / fid_floor if fid_floor > 0 else None,
        "kid_mean": kid_mean, "kid_std": kid_std, "kid_floor_mean": floor_mean, "kid_floor_std": floor_std,
    }


def evaluate_generator(family: Family, nets: Nets, spec: DataSpec, evaluator: Evaluator) -> dict:
    """Every metric of a trained generator, plus the untrained-generator FID for scale."""
    cfg = family.cfg
    n = sample_count(cfg, len(evaluator.test_features))
    generated = draw(family, nets, n, cfg.eval.seed)
    metrics = image_metrics(evaluator, generated, cfg, n)
    metrics["fid_untrained"] = fid_to_reference(evaluator, evaluator.features(untrained_samples(family, spec, n)))
    metrics["evaluator_accuracy"] = evaluator.meta["test_accuracy"]
    metrics["n_samples"] = n
    log.info("FID %.3f (floor %.3f, ratio %s, untrained %.1f); KID %.4f +- %.4f",
             metrics["fid"], metrics["fid_floor"], metrics["fid_over_floor"], metrics["fid_untrained"],
             metrics["kid_mean"], metrics["kid_std"])
    return metrics


def evaluate_points(family: Family, nets: Nets, spec: DataSpec, reference: dict, x_test: np.ndarray) -> dict:
    """Mode metrics of N generated points, of the real test points (floor) and of an untrained G."""
    cfg = family.cfg
    n = sample_count(cfg, len(x_test))
    means, std = np.asarray(reference["modes"]), reference["mode_std"]
    metrics = mode_metrics(draw(family, nets, n, cfg.eval.seed), means, std)
    metrics.update({f"{k}_floor": v for k, v in mode_metrics(x_test[:n], means, std).items()})
    metrics["modes_untrained"] = mode_metrics(untrained_samples(family, spec, n), means, std)["modes"]
    metrics["n_samples"] = n
    # No high-quality sample at all makes the reverse KL infinite; JSON and MLflow get null instead.
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    log.info("modes %d/%d, high quality %.1f%%, reverse KL %s", metrics["modes"], len(means),
             100 * metrics["high_quality"], metrics["reverse_kl"])
    return metrics


def evaluate_variant(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, x_test: np.ndarray) -> dict:
    """The family-independent entry point: mode metrics for 2-D points, FID/KID for images."""
    meta = json.loads((Path(evaluator_dir) / "meta.json").read_text())
    if meta["kind"] == "modes":
        return evaluate_points(family, nets, spec, meta, x_test)
    return evaluate_generator(family, nets, spec, load_evaluator(evaluator_dir))
