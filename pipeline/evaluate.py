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

from dataclasses import replace

from pipeline.artifacts import HISTORY_FILE, read_history
from pipeline.config import ConfigError, EvaluatorConfig, TrainingConfig
from pipeline.data import DataSpec, Prepared, to_unit_range
from pipeline.evaluator import label_accuracy, train_classifier
from pipeline.images import to_uint8
from pipeline.families import Family, Nets, family_for
from pipeline.metrics import feature_stats, frechet_distance, kid
from pipeline.metrics.features import Evaluator, classify_channels, load_classifier, load_evaluator
from pipeline.metrics.modes import mode_metrics, stacked_mode_metrics
from pipeline.metrics.prdc import prdc
from pipeline.models.evaluator import EvaluatorCNN
from pipeline.metrics.gradients import early_gradient_ratio
from pipeline.sampling import draw, load_generator

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
    """FID, KID, precision/recall and density/coverage of ``generated`` [n, C, H, W], and of the real
    test split (the floor), against the real train split."""
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
        **prdc(real, gen_f),  # precision, recall (k = 3), density, coverage (k = 5) against the train split
        **{f"{k}_floor": v for k, v in prdc(real, test_f).items()},
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


def summarize_seeds(per_seed: dict[int, dict]) -> dict:
    """One run's metrics as they are; several seeds' as the mean of each metric, its spread (sample
    std, ddof 1) under ``std``, and every seed's values under ``per_seed``."""
    if len(per_seed) == 1:
        return next(iter(per_seed.values()))
    runs = list(per_seed.values())
    keys = [k for k in runs[0] if all(isinstance(r.get(k), (int, float)) for r in runs)]
    summary: dict = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    summary["std"] = {k: float(np.std([r[k] for r in runs], ddof=1)) for k in keys}
    summary["seeds"] = list(per_seed)
    summary["per_seed"] = {str(seed): metrics for seed, metrics in per_seed.items()}
    return summary


def evaluate_stacked(family: Family, nets: Nets, spec: DataSpec, classifier: EvaluatorCNN,
                     x_test: np.ndarray) -> dict:
    """Stacked digits: modes (distinct class triples) and KL to uniform of N generated samples
    (26,000 by the protocol: the test split's size), of the real test stacks (floor) and of an untrained G."""
    cfg = family.cfg
    n = sample_count(cfg, len(x_test))
    metrics = stacked_mode_metrics(classify_channels(classifier, draw(family, nets, n, cfg.eval.seed)))
    real = stacked_mode_metrics(classify_channels(classifier, to_unit_range(x_test[:n])))
    metrics.update({f"{k}_floor": v for k, v in real.items()})
    metrics["modes_untrained"] = stacked_mode_metrics(
        classify_channels(classifier, untrained_samples(family, spec, n)))["modes"]
    metrics["n_samples"] = n
    log.info("stacked digits: %d of 1000 modes, KL %.3f (real test: %d, %.3f)", metrics["modes"], metrics["kl"],
             metrics["modes_floor"], metrics["kl_floor"])
    return metrics


def evaluate_conditional(family: Family, nets: Nets, evaluator: Evaluator, data: Prepared,
                         classifier_cfg: EvaluatorConfig) -> dict:
    """A conditional generator's class fidelity (REFERENCE.md):

    - ``label_accuracy``: share of samples drawn for class y that the evaluator labels y;
    - ``intra_fid``: FID per class against that class's real train features, at N = that class's
      test count, averaged over classes (``intra_fid_floor``: the real test images of each class);
    - ``cas``: classification accuracy score, the accuracy on the real test split of a classifier
      trained (same recipe as the evaluator) only on generated samples, as many as the train split,
      balanced; ``cas_real`` is the same classifier trained on the real train split.
    """
    cfg, k = family.cfg, family.num_classes()
    n = sample_count(cfg, len(data.x_test))
    labels = family.balanced_labels(n).numpy()
    accuracy = label_accuracy(evaluator.model, draw(family, nets, n, cfg.eval.seed, labels=labels), labels)
    intra, floor = [], []
    train_y = data.train_labels()  # [N_train]: the order of the evaluator's train features
    for c in range(k):
        mu, cov = feature_stats(evaluator.train_features[train_y == c])
        n_c = int((data.y_test == c).sum())
        generated = draw(family, nets, n_c, cfg.eval.seed + 1 + c, labels=np.full(n_c, c))
        intra.append(frechet_distance(*feature_stats(evaluator.features(generated)), mu, cov))
        floor.append(frechet_distance(*feature_stats(evaluator.test_features[data.y_test == c]), mu, cov))
    train_labels = family.balanced_labels(data.n_train).numpy()
    synthetic = draw(family, nets, len(train_labels), cfg.eval.seed + 1000, labels=train_labels)
    _, cas = train_classifier(classifier_cfg, replace(data, x_train=to_uint8(synthetic), y_train=train_labels,
                                                         train_shards=None))
    log.info("conditional: label accuracy %.3f, intra-FID %.2f (floor %.2f), CAS %.3f (real %.3f)", accuracy,
             np.mean(intra), np.mean(floor), cas, evaluator.meta["test_accuracy"])
    return {"label_accuracy": accuracy, "intra_fid": float(np.mean(intra)), "intra_fid_floor": float(np.mean(floor)),
            "cas": cas, "cas_real": evaluator.meta["test_accuracy"]}


def evaluate_run(model_dir: Path, evaluator_dir: str, data: Prepared,
                 classifier_cfg: EvaluatorConfig) -> tuple[Family, Nets, dict]:
    """Load one trained run (one seed) and compute its metrics, plus the early minimax vs
    non-saturating gradient ratio where the run logged both norms."""
    family, nets, spec = load_generator(model_dir)
    metrics = evaluate_variant(family, nets, spec, evaluator_dir, data, classifier_cfg)
    metrics.update(early_gradient_ratio(read_history(Path(model_dir) / HISTORY_FILE)))
    return family, nets, metrics


def evaluate_variant(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                     classifier_cfg: EvaluatorConfig) -> dict:
    """The family-independent entry point: mode metrics for 2-D points and stacked digits, FID/KID,
    precision/recall and density/coverage for other images, plus class fidelity if conditional.
    ``classifier_cfg`` is the dataset's evaluator recipe (the CAS classifier is trained with it)."""
    meta = json.loads((Path(evaluator_dir) / "meta.json").read_text())
    if meta["kind"] == "translation":
        return evaluate_translation(family, nets, data, evaluator_dir)
    if meta["kind"] == "modes":
        return evaluate_points(family, nets, spec, meta, data.x_test)
    if meta["kind"] == "channel_classifier":
        return evaluate_stacked(family, nets, spec, load_classifier(evaluator_dir), data.x_test)
    evaluator = load_evaluator(evaluator_dir)
    metrics = evaluate_generator(family, nets, spec, evaluator)
    # The family's own metrics (StyleGAN: PPL, truncation sweep, style-mixing class following).
    metrics.update(family.extra_eval_metrics(nets, evaluator, metrics["n_samples"], family.cfg.eval.seed))
    metrics.update(family.held_out_metrics(nets, torch.from_numpy(to_unit_range(data.x_test)), family.cfg.eval.seed))
    if family.num_classes():
        metrics.update(evaluate_conditional(family, nets, evaluator, data, classifier_cfg))
    return metrics


def evaluate_translation(family: Family, nets: Nets, data: Prepared, evaluator_dir: str) -> dict:
    """A translation family in both directions (REFERENCE.md), on the held-out images of each domain:

    - ``label_preservation_ab``: share of translated A test images that B's evaluator assigns the
      source image's label (and ``_ba`` the other way); only for labelled domains; ``_identity``:
      the same for the untranslated images;
    - ``fid_ab``: FID of G_AB(A test) against B's real train features (B's evaluator), with
      ``fid_ab_floor`` (B's real test images at the same N) and ``fid_ab_identity`` (the A test
      images untranslated: where translation starts from);
    - ``cycle_l1_a``: mean |G_BA(G_AB(a)) - a| per pixel (images in [-1, 1]); ``_b`` likewise.
    """
    cfg = family.cfg
    domains = {"a": (to_unit_range(data.x_test), data.y_test), "b": (to_unit_range(data.x_test_b), data.y_test_b)}
    metrics: dict = {}
    for direction, source, target in (("ab", "a", "b"), ("ba", "b", "a")):
        evaluator = load_evaluator(Path(evaluator_dir) / target.upper())
        x, labels = domains[source]
        n = sample_count(cfg, min(len(x), len(evaluator.test_features)))
        translated = family.translate(nets, x[:n], direction.upper())
        fid = fid_to_reference(evaluator, evaluator.features(translated))
        floor = fid_to_reference(evaluator, evaluator.test_features[:n])
        metrics.update({f"fid_{direction}": fid, f"fid_{direction}_floor": floor,
                        f"fid_{direction}_over_floor": fid / floor if floor > 0 else None,
                        f"fid_{direction}_identity": fid_to_reference(evaluator, evaluator.features(x[:n])),
                        f"cycle_l1_{source}": float(np.abs(family.translate(nets, translated, direction[::-1].upper())
                                                           - x[:n]).mean())})
        if evaluator.meta["classifies"] == "class":  # and what leaving the images untranslated would get
            metrics[f"label_preservation_{direction}"] = label_accuracy(evaluator.model, translated, labels[:n])
            metrics[f"label_preservation_{direction}_identity"] = label_accuracy(evaluator.model, x[:n], labels[:n])
        metrics[f"n_samples_{direction}"] = n
    log.info("translation: %s", ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics
