"""The quality a hyperparameter search optimises, measured at every report of a trial.

Never the per-batch loss (a GAN's losses say little about its samples): the objective is the
family's evaluation metric on freshly generated samples, against the dataset's evaluator
(``evaluators/<dataset>/``), the same code :mod:`pipeline.evaluate` uses for the final numbers:

- images: KID (unbiased MMD^2, cubic kernel, in the evaluator's feature space) of ``n`` samples
  against the real train split; minimised; its std over subsets is the spread;
- 2-D mixtures: ``modes/K x high_quality`` (the share of the K modes covered, times the share of
  samples within 3 std of a mode; both of the PacGAN protocol), maximised;
- translation (CycleGAN): the mean label preservation of A->B and B->A; maximised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data import Prepared
from pipeline.families import Family, Nets
from pipeline.metrics import kid
from pipeline.metrics.features import load_evaluator
from pipeline.metrics.modes import mode_metrics
from pipeline.sampling import draw

# evaluator kind -> (objective name, "min" | "max")
OBJECTIVES: dict[str, tuple[str, str]] = {
    "classifier": ("kid", "min"), "modes": ("modes_x_quality", "max"),
    "translation": ("label_preservation", "max")}
KID_SUBSETS = 50  # fewer subsets than the final evaluation: the objective is measured every epoch


def objective_of(evaluator_dir: str | Path) -> tuple[str, str]:
    """(name, mode) of the objective for the dataset whose evaluator lives in ``evaluator_dir``."""
    kind = json.loads((Path(evaluator_dir) / "meta.json").read_text())["kind"]
    if kind not in OBJECTIVES:
        raise ValueError(f"{evaluator_dir}: evaluator kind {kind!r} has no tuning objective; "
                         f"allowed: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind]


class Objective:
    """Callable on the nets of a training run; returns ``{"objective": value, "objective/...": ...}``.

    The evaluator is loaded once; each call draws ``n`` samples with a fixed seed (so two epochs or
    two trials differ only by their generators) and restores the nets' train/eval modes afterwards.
    """

    def __init__(self, evaluator_dir: str | Path, family: Family, data: Prepared, n: int, seed: int):
        self.dir, self.family, self.data, self.seed = Path(evaluator_dir), family, data, seed
        self.name, self.mode = objective_of(evaluator_dir)
        self.meta = json.loads((self.dir / "meta.json").read_text())
        self.evaluator = load_evaluator(self.dir) if self.name == "kid" else None
        self.n = n if self.evaluator is None else min(n, len(self.evaluator.train_features))

    def __call__(self, nets: Nets) -> dict[str, float]:
        modes = {name: net.training for name, net in nets.items()}
        try:
            return self._measure(nets)
        finally:
            for name, net in nets.items():
                net.train(modes[name])

    def _measure(self, nets: Nets) -> dict[str, float]:
        if self.name == "kid":
            features = self.evaluator.features(draw(self.family, nets, self.n, self.seed))
            mean, std = kid(self.evaluator.train_features, features, KID_SUBSETS, 1000, self.seed)
            return {"objective": mean, "objective/std": std}
        if self.name == "modes_x_quality":
            means = np.asarray(self.meta["modes"])
            found = mode_metrics(draw(self.family, nets, self.n, self.seed), means, self.meta["mode_std"])
            return {"objective": found["modes"] / len(means) * found["high_quality"],
                    "objective/modes": float(found["modes"]), "objective/high_quality": found["high_quality"]}
        from pipeline.evaluate import evaluate_translation  # (evaluate imports the training checkpoint I/O)

        found = evaluate_translation(self.family, nets, self.data, str(self.dir))
        if "label_preservation_ab" not in found:
            raise ValueError(f"{self.dir}: a translation objective needs class labels in both domains")
        return {"objective": (found["label_preservation_ab"] + found["label_preservation_ba"]) / 2,
                "objective/label_preservation_ab": found["label_preservation_ab"],
                "objective/label_preservation_ba": found["label_preservation_ba"]}


def make_objective(spec: dict[str, Any] | None, family: Family, data: Prepared) -> Objective | None:
    """The objective a :class:`~pipeline.train.loop.TrainJob` asks for (``{"evaluator_dir", "n", "seed"}``)."""
    if not spec:
        return None
    return Objective(spec["evaluator_dir"], family, data, int(spec["n"]), int(spec["seed"]))
