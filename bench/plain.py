"""A bare PyTorch training loop: the same family, data and batches as the Ray path, nothing else
(no Ray, no checkpoints, no MLflow). The baseline the benchmarks compare Ray Train against."""

from __future__ import annotations

import time
from typing import Iterator

import torch
import yaml

from pipeline.config import TrainingConfig
from pipeline.data import Prepared
from pipeline.families import Family, Nets, family_for
from pipeline.families.base import StepEnv, autocast_for
from pipeline.train.loop import epoch_seed, place_nets
from pipeline.train.sharding import training_batches


def parse_overrides(items: list[str]) -> dict:
    """The benches' ``--set key=value ...`` as a dict, each value read as YAML (``0.3`` -> 0.3)."""
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def plain_epochs(cfg: TrainingConfig, data: Prepared, device: str = "cpu",
                 epoch_means: dict[str, float] | None = None) -> Iterator[tuple[int, Family, Nets, float]]:
    """Train for ``cfg.epochs`` epochs on ``device`` (with ``cfg.precision``); after each yield
    (epoch, family, nets, images per second). ``epoch_means``, if given, holds the epoch's mean
    of each scalar the train step returns (``loss/D``, ``D/real``, ...) at each yield."""
    family = family_for(cfg)
    torch.manual_seed(cfg.seed)
    nets = place_nets(family.build(data.spec), device, cfg.channels_last)
    opts = family.optimizers(nets)
    batches = training_batches(data, cfg.batch_size, 0, 1, cfg.seed, torch.device(device))
    env = StepEnv(step=0, device=torch.device(device), sync_grads=lambda params: None,
                  autocast=autocast_for(cfg.precision, torch.device(device)))
    for epoch in range(cfg.epochs):
        torch.manual_seed(epoch_seed(cfg.seed, 0, epoch))
        env.epoch = epoch
        started = time.perf_counter()
        sums: dict[str, float] = {}
        for batch in batches.epoch(epoch):
            for key, value in family.train_step(nets, opts, batch, env).items():
                sums[key] = sums.get(key, 0.0) + value
            env.step += 1
        rate = batches.steps_per_epoch() * cfg.batch_size / (time.perf_counter() - started)
        if epoch_means is not None:
            epoch_means.clear()
            epoch_means.update({key: total / batches.steps_per_epoch() for key, total in sums.items()})
        yield epoch + 1, family, nets, rate
