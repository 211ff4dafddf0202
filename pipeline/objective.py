"""The quality a hyperparameter search optimises, measured at every report of a trial.

Never the per-batch loss (a GAN's losses say little about its samples): the objective is the
family's evaluation metric on freshly generated samples, against the dataset's evaluator
(``evaluators/<dataset>/``), the same code :mod:`pipeline.evaluation` uses for the final numbers:

- images: KID (unbiased MMD^2, cubic kernel, in the evaluator's feature space) of ``n`` samples
  against the real train split; minimised; its std over subsets is the spread;
- 2-D mixtures: ``modes/K x high_quality`` (the share of the K modes covered, times the share of
  samples within 3 std of a mode; both of the PacGAN protocol), maximised;
- translation (CycleGAN): the mean label preservation of A->B and B->A; maximised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data import Prepared
from pipeline.evaluation import EVALUATION_KINDS, evaluation_for, evaluator_meta
from pipeline.families import Family, Nets
from pipeline.metrics.features import load_evaluator


def objective_of(evaluator_dir: str | Path) -> tuple[str, str]:
    """(name, mode) of the objective for the dataset whose evaluator lives in ``evaluator_dir``."""
    objective = evaluation_for(evaluator_dir).objective
    if objective is None:
        tunable = [kind for kind, entry in EVALUATION_KINDS.items() if entry.objective]
        raise ValueError(f"{evaluator_dir}: evaluator kind {evaluator_meta(evaluator_dir)['kind']!r} has no "
                         f"tuning objective; allowed: {', '.join(tunable)}")
    return objective


class Objective:
    """Callable on the nets of a training run; returns ``{"objective": value, "objective/...": ...}``.

    The evaluator is loaded once; each call draws ``n`` samples with a fixed seed (so two epochs or
    two trials differ only by their generators) and restores the nets' train/eval modes afterwards.
    What is measured is the evaluator kind's (:data:`pipeline.evaluation.EVALUATION_KINDS`).
    """

    def __init__(self, evaluator_dir: str | Path, family: Family, data: Prepared, n: int, seed: int):
        self.dir, self.family, self.data, self.seed = Path(evaluator_dir), family, data, seed
        self.name, self.mode = objective_of(evaluator_dir)
        self.kind = evaluation_for(evaluator_dir)
        self.meta = evaluator_meta(evaluator_dir)
        self.evaluator = load_evaluator(self.dir) if self.kind.needs_features else None
        self.n = n if self.evaluator is None else min(n, len(self.evaluator.train_features))

    def __call__(self, nets: Nets) -> dict[str, float]:
        modes = {name: net.training for name, net in nets.items()}
        try:
            return self.kind.measure(self, nets)
        finally:
            for name, net in nets.items():
                net.train(modes[name])


def make_objective(spec: dict[str, Any] | None, family: Family, data: Prepared) -> Objective | None:
    """The objective a :class:`~pipeline.train.loop.TrainJob` asks for (``{"evaluator_dir", "n", "seed"}``)."""
    if not spec:
        return None
    return Objective(spec["evaluator_dir"], family, data, int(spec["n"]), int(spec["seed"]))
