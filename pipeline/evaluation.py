"""One registry entry per evaluator kind: the final metrics ``evaluate@`` reports, the objective a
search optimises and the summary ``evaluator@`` writes, from one place (DESIGN.md section 2).

The kind is the ``kind`` in an evaluator's ``meta.json``, which :func:`pipeline.evaluator.build_evaluator`
chooses from the dataset:

- ``classifier``: images (with or without classes): FID/KID/precision/recall/density/coverage in
  the evaluator's features, the family's own metrics, and class fidelity for a conditional G;
  tuned on KID (minimised);
- ``channel_classifier``: stacked digits: modes (class triples) and KL to uniform; not tunable yet;
- ``modes``: 2-D mixtures: the PacGAN mode metrics; tuned on modes/K x high quality (maximised);
- ``translation``: two domains: label preservation, FID and cycle L1 both ways; tuned on the mean
  label preservation (maximised).

A new evaluator kind is one :class:`EvaluationKind` added to :data:`EVALUATION_KINDS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from pipeline.artifacts import HISTORY_FILE, read_history
from pipeline.config import EvaluatorConfig
from pipeline.data import DataSpec, Prepared, to_unit_range
from pipeline.evaluate import (evaluate_conditional, evaluate_generator, evaluate_points, evaluate_stacked,
                               evaluate_translation)
from pipeline.families import Family, Nets
from pipeline.metrics import kid
from pipeline.metrics.features import load_classifier, load_evaluator
from pipeline.metrics.gradients import early_gradient_ratio
from pipeline.metrics.modes import mode_metrics
from pipeline.sampling import draw, load_generator

if TYPE_CHECKING:
    from pipeline.objective import Objective

KID_SUBSETS = 50  # fewer subsets than the final evaluation: the objective is measured every epoch
FinalMetrics = Callable[[Family, Nets, DataSpec, str, Prepared, EvaluatorConfig], dict]


@dataclass(frozen=True)
class EvaluationKind:
    """What one evaluator kind measures.

    ``final_metrics(family, nets, spec, evaluator_dir, data, classifier_cfg)``: the metrics of a
    trained generator (``classifier_cfg`` is the dataset's evaluator recipe, for the CAS classifier).
    ``summary(meta)``: the evaluator's own metrics (``metrics/evaluator_<dataset>.json``).
    ``objective``: (name, "min" | "max") of the tuning objective, None if the kind cannot be tuned;
    ``measure(objective, nets)`` computes it; ``needs_features``: the objective loads the feature
    evaluator (``objective.evaluator``).
    """

    final_metrics: FinalMetrics
    summary: Callable[[dict], dict]
    objective: tuple[str, str] | None = None
    measure: Callable[["Objective", Nets], dict[str, float]] | None = None
    needs_features: bool = False


def evaluator_meta(evaluator_dir: str | Path) -> dict:
    return json.loads((Path(evaluator_dir) / "meta.json").read_text())


def evaluation_for(evaluator_dir: str | Path) -> EvaluationKind:
    """The registry entry of the evaluator stored in ``evaluator_dir``."""
    kind = evaluator_meta(evaluator_dir)["kind"]
    if kind not in EVALUATION_KINDS:
        raise ValueError(f"{evaluator_dir}: unknown evaluator kind {kind!r}; allowed: {', '.join(EVALUATION_KINDS)}")
    return EVALUATION_KINDS[kind]


def evaluate_variant(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                     classifier_cfg: EvaluatorConfig) -> dict:
    """The final metrics of a trained generator, as its evaluator's kind defines them."""
    return evaluation_for(evaluator_dir).final_metrics(family, nets, spec, evaluator_dir, data, classifier_cfg)


def evaluate_run(model_dir: Path, evaluator_dir: str, data: Prepared,
                 classifier_cfg: EvaluatorConfig) -> tuple[Family, Nets, dict]:
    """Load one trained run (one seed) and compute its metrics, plus the early minimax vs
    non-saturating gradient ratio where the run logged both norms."""
    family, nets, spec = load_generator(model_dir)
    metrics = evaluate_variant(family, nets, spec, evaluator_dir, data, classifier_cfg)
    metrics.update(early_gradient_ratio(read_history(Path(model_dir) / HISTORY_FILE)))
    return family, nets, metrics


# --- images with classes ------------------------------------------------------------------------

def _image_metrics(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                   classifier_cfg: EvaluatorConfig) -> dict:
    evaluator = load_evaluator(evaluator_dir)
    metrics = evaluate_generator(family, nets, spec, evaluator)
    # The family's own metrics (StyleGAN: PPL, truncation sweep, style-mixing class following).
    metrics.update(family.extra_eval_metrics(nets, evaluator, metrics["n_samples"], family.cfg.eval.seed))
    metrics.update(family.held_out_metrics(nets, torch.from_numpy(to_unit_range(data.x_test)), family.cfg.eval.seed))
    if family.num_classes():
        metrics.update(evaluate_conditional(family, nets, evaluator, data, classifier_cfg))
    return metrics


def _kid_objective(objective: "Objective", nets: Nets) -> dict[str, float]:
    features = objective.evaluator.features(draw(objective.family, nets, objective.n, objective.seed))
    mean, std = kid(objective.evaluator.train_features, features, KID_SUBSETS, 1000, objective.seed)
    return {"objective": mean, "objective/std": std}


# --- 2-D mixtures -------------------------------------------------------------------------------

def _point_metrics(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                   classifier_cfg: EvaluatorConfig) -> dict:
    return evaluate_points(family, nets, spec, evaluator_meta(evaluator_dir), data.x_test)


def _modes_objective(objective: "Objective", nets: Nets) -> dict[str, float]:
    means = np.asarray(objective.meta["modes"])
    found = mode_metrics(draw(objective.family, nets, objective.n, objective.seed), means, objective.meta["mode_std"])
    return {"objective": found["modes"] / len(means) * found["high_quality"],
            "objective/modes": float(found["modes"]), "objective/high_quality": found["high_quality"]}


# --- stacked digits -----------------------------------------------------------------------------

def _stacked_metrics(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                     classifier_cfg: EvaluatorConfig) -> dict:
    return evaluate_stacked(family, nets, spec, load_classifier(evaluator_dir), data.x_test)


# --- two domains --------------------------------------------------------------------------------

def _translation_metrics(family: Family, nets: Nets, spec: DataSpec, evaluator_dir: str, data: Prepared,
                         classifier_cfg: EvaluatorConfig) -> dict:
    return evaluate_translation(family, nets, data, evaluator_dir)


def _translation_objective(objective: "Objective", nets: Nets) -> dict[str, float]:
    found = evaluate_translation(objective.family, nets, objective.data, str(objective.dir))
    if "label_preservation_ab" not in found:
        raise ValueError(f"{objective.dir}: a translation objective needs class labels in both domains")
    return {"objective": (found["label_preservation_ab"] + found["label_preservation_ba"]) / 2,
            "objective/label_preservation_ab": found["label_preservation_ab"],
            "objective/label_preservation_ba": found["label_preservation_ba"]}


def _accuracy(meta: dict) -> dict:
    return {"test_accuracy": meta["test_accuracy"]}


EVALUATION_KINDS: dict[str, EvaluationKind] = {
    "classifier": EvaluationKind(_image_metrics, _accuracy, ("kid", "min"), _kid_objective, needs_features=True),
    "channel_classifier": EvaluationKind(_stacked_metrics, _accuracy),
    "modes": EvaluationKind(_point_metrics, lambda meta: {"modes": len(meta["modes"])},
                            ("modes_x_quality", "max"), _modes_objective),
    "translation": EvaluationKind(  # one evaluator per domain
        _translation_metrics,
        lambda meta: {f"test_accuracy_{domain.lower()}": acc for domain, acc in meta["test_accuracy"].items()},
        ("label_preservation", "max"), _translation_objective),
}
