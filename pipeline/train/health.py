"""Training health: divergence stops a run, mode collapse raises a flag (docs/reliability.md).

Why here and not in the families: a NaN loss, or a discriminator that has won outright, means the
run's later checkpoints and its final model are worthless whatever the family, so the per-worker
loop watches every step and stops with a one-line reason naming the step and the metric
(DESIGN.md section 4: divergence is a stop, not a result). Mode collapse is not a stop: a
collapsed generator can recover, so it is a logged signal (``health/*`` metrics, a warning tag).

The watch reads the Python floats each ``train_step`` already returns (they were synchronised
with the device to become floats), so checking them adds no device sync and consumes no RNG: a
run that stays finite computes exactly what it computed without the watch.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

# Fault injection for tests and drills only: the train driver reads this variable and the loop
# overwrites one weight of the first network with NaN just before global step N (1-based), so
# that a real forward pass produces the non-finite loss that the watch must catch. Unset in
# normal runs (then nothing is touched).
INJECT_NAN_ENV = "GAN_LAB_INJECT_NAN_AT_STEP"

# The MLflow run tag holding a diverged run's one-line reason (rank 0 sets it; the driver reads it,
# since Ray Train V2 keeps only the metrics of reports that carry a checkpoint).
DIVERGENCE_TAG = "divergence"

# Where a diverged report puts the objective of a tuning trial: worse than any real value of every
# objective (KID >= 0 is minimised; shares in [0, 1] are maximised), finite so that schedulers
# (ASHA's rung percentiles) can still compare it and rank the trial last.
WORST_OBJECTIVE = {"min": 1e30, "max": -1e30}

# Sample spread below this share of the real data's spread counts as collapse (the warning tag),
# once the run has been at RECOVERED_FACTOR times it: collapse is diversity *lost*. An untrained
# generator, or StyleGAN's early low-resolution phases, start below the threshold and would
# otherwise be flagged (the ratios measured at the start of each family: docs/reliability.md).
COLLAPSE_SPREAD_RATIO = 0.1
RECOVERED_FACTOR = 2.0
HEALTH_SAMPLES = 256  # at most this many samples enter the spread (pairwise distances: n^2)


def injected_fault_step() -> int | None:
    """The step ``GAN_LAB_INJECT_NAN_AT_STEP`` asks to poison (None when unset)."""
    value = os.environ.get(INJECT_NAN_ENV, "").strip()
    return int(value) if value else None


@torch.no_grad()
def inject_nan(nets: dict[str, torch.nn.Module]) -> None:
    """The fault of ``GAN_LAB_INJECT_NAN_AT_STEP``: one weight of the first network becomes NaN."""
    first = next(iter(nets.values()))
    param = next(first.parameters())
    param[(0,) * param.dim()] = float("nan")  # (a view(-1) fails on channels-last weights)


class DivergenceWatch:
    """The first non-finite step scalar, or a divergence rule (``divergence`` params) that fired.

    ``rule`` is the variant's ``divergence`` config (None: only non-finite values stop a run).
    With ``saturated_epochs`` k, an epoch whose mean D/real > 1 - margin and mean D/fake < margin
    (D separates real from fake perfectly: G gets no useful gradient) counts as saturated; k in
    a row stop the run.
    """

    def __init__(self, rule: Any = None):
        self.rule = rule
        self.reason: str | None = None
        self._sums = [0.0, 0.0, 0]  # D/real, D/fake, steps of this epoch (only with a rule)
        self._saturated = 0

    def step(self, scalars: dict[str, float], step: int, epoch: int) -> bool:
        """Check one step's scalars (``step`` 1-based, ``epoch`` 1-based); True when it diverged."""
        for key, value in scalars.items():
            if not math.isfinite(value):
                self.reason = self.reason or f"non-finite {key} = {value} at step {step} (epoch {epoch})"
                return True
        if self.rule is not None and "D/real" in scalars:
            sums = self._sums
            sums[0] += scalars["D/real"]
            sums[1] += scalars["D/fake"]
            sums[2] += 1
        return False

    def end_epoch(self, epoch: int, step: int) -> str | None:
        """Apply the rule to the epoch's means; returns the reason once the run diverged."""
        if self.rule is None or self.reason is not None or not self._sums[2]:
            return self.reason
        real, fake, n = self._sums
        self._sums = [0.0, 0.0, 0]
        margin = self.rule.margin
        saturated = real / n > 1 - margin and fake / n < margin
        self._saturated = self._saturated + 1 if saturated else 0
        if self._saturated >= self.rule.saturated_epochs:
            self.reason = (f"D saturated (mean D/real = {real / n:.4f}, D/fake = {fake / n:.4f}, margin {margin}) "
                           f"for {self._saturated} epochs in a row, ending at step {step} (epoch {epoch})")
        return self.reason


def nonfinite_weights(nets: dict[str, torch.nn.Module]) -> str | None:
    """The first network parameter holding a NaN or inf (a finite loss can precede broken weights:
    the update after it may overflow), so that no checkpoint with broken weights is reported.

    One sum per parameter and a single device sync (about 0.2 ms for the default DCGAN's 0.66 M
    weights on one thread, once per report): a NaN or inf makes its sum non-finite; so would
    weights near float32's limit (1e38), which are broken too.
    """
    sums = torch.stack([p.detach().sum().float() for net in nets.values() for p in net.parameters()])
    if bool(torch.isfinite(sums).all()):
        return None
    return next(f"{name}.{pname}" for name, net in nets.items() for pname, p in net.named_parameters()
                if not math.isfinite(float(p.detach().sum())))


def agree(reason: str | None, world_size: int) -> str | None:
    """Every rank's verdict, so that all stop together (one small collective per epoch, only with
    several workers): the reason of the lowest rank that has one."""
    import torch.distributed as dist

    if world_size == 1 or not dist.is_initialized():
        return reason
    reasons: list[str | None] = [None] * world_size
    dist.all_gather_object(reasons, reason)
    return next((r for r in reasons if r), None)


class CollapseMonitor:
    """Mode collapse as a number: the mean pairwise distance of a fixed batch of samples over that
    of real data (``health/spread_ratio``; 1 matches the data's diversity, 0 is one repeated sample).
    ``health/collapsed`` is 1 when the ratio is below ``threshold`` after this monitor has seen it
    at ``RECOVERED_FACTOR x threshold`` or more (a resumed run starts that memory afresh).

    Cheap enough for every report: it reuses the sample grid the loop draws for MLflow anyway, and
    the real reference is computed once. Class histograms would need the evaluator, which a
    training worker does not have; the spread needs nothing but the data.
    """

    def __init__(self, real: np.ndarray, threshold: float = COLLAPSE_SPREAD_RATIO):
        self.threshold = threshold
        self.warned = False  # the run is tagged once, at the first collapse
        self.best = 0.0  # the highest ratio seen so far
        self.real_spread = mean_pairwise_distance(real)

    def measure(self, samples: np.ndarray) -> dict[str, float]:
        spread = mean_pairwise_distance(samples)
        ratio = spread / self.real_spread if self.real_spread > 0 else float("nan")
        self.best = max(self.best, ratio) if math.isfinite(ratio) else self.best
        collapsed = ratio < self.threshold and self.best >= RECOVERED_FACTOR * self.threshold
        return {"health/spread": spread, "health/spread_ratio": ratio, "health/collapsed": float(collapsed)}


def real_reference(x: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` real samples on the generator's scale (images uint8 -> [-1, 1]; points as is)."""
    x = np.asarray(x[:n])
    return x.astype(np.float32) / 127.5 - 1 if x.dtype == np.uint8 else x.astype(np.float32)


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of the first HEALTH_SAMPLES rows (flattened)."""
    flat = torch.as_tensor(np.asarray(x[:HEALTH_SAMPLES], dtype=np.float32)).reshape(min(len(x), HEALTH_SAMPLES), -1)
    n = flat.shape[0]
    if n < 2:
        return 0.0
    return float(torch.pdist(flat.double()).mean())
