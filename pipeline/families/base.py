"""What every family provides, and the helpers they share.

A family is a class constructed with its variant's config (``FAMILIES[cfg.family](cfg)``) with:

- ``build(spec) -> Nets``: named modules (``G``, ``D``, optionally ``G_ema``; later families
  use ``G_AB``/``G_BA``/``D_A``/``D_B`` or ``E``/``Dec``).
- ``optimizers(nets) -> dict[str, Optimizer]``.
- ``train_step(nets, opts, batch, env) -> dict[str, float]``: one D phase and one G phase; returns
  namespaced scalars (``loss/D``, ``loss/G``, ``grad_norm/G``, ``D/real`` = mean D(x),
  ``D/fake`` = mean D(G(z)); MLflow forbids parentheses in metric names).
- ``sample(nets, n, generator, cond=None) -> Tensor``: images in [-1, 1] from the sampling network.
- ``sampling_net_name``: which entry of ``Nets`` draws samples (the EMA generator where enabled);
  ``saved_net_names``: the nets the trained model keeps (the VAE also keeps its encoder).
- ``held_out_metrics(nets, x, seed)``: metrics on real test images (the VAE's ELBO); {} for GANs.
- ``input_example(n)``: an input batch of the sampling network (for the logged MLflow model).
- ``num_classes()``: how many classes ``sample(..., cond=labels)`` takes (0: unconditional).
- ``translates``: True for a translation family (CycleGAN), which has ``translate(nets, images,
  direction)`` and ``translation_grid(nets, a, b)`` instead of sampling from noise.

All checkpoint state is ``state_dict``s of ``Nets`` and the optimisers (see ``pipeline.train.checkpoint``).
"""

from __future__ import annotations

import copy
import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterable, Protocol

import numpy as np
import torch
from torch import nn

from pipeline.config import TrainingConfig
from pipeline.data import DataSpec

Nets = dict[str, nn.Module]
Optimizers = dict[str, torch.optim.Optimizer]


@dataclass
class StepEnv:
    """What a train step needs from its runtime, without knowing the runtime.

    ``sync_grads(params)`` averages gradients over data-parallel workers (all-reduce); on one worker
    it does nothing. Families call it between ``backward()`` and ``optimizer.step()``. ``epoch`` is
    the 0-based epoch the step belongs to (learning-rate schedules). ``autocast()`` is the context
    the forward passes and losses run in: bf16 autocast with ``precision: bf16`` (weights, gradients
    and optimiser state stay fp32; bf16 has fp32's exponent range, so no loss scaling is needed),
    else nothing. Backward passes run outside it, as PyTorch recommends.
    """

    step: int
    device: torch.device
    sync_grads: Callable[[Iterable[nn.Parameter]], None]
    epoch: int = 0
    autocast: Callable[[], ContextManager] = field(default=contextlib.nullcontext)


def autocast_for(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """The ``StepEnv.autocast`` of a ``precision`` ("fp32" or "bf16") on ``device``."""
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class Family(Protocol):
    sampling_net_name: str
    saved_net_names: tuple[str, ...]  # what models/<variant>/ keeps (the sampling net first)
    translates: bool  # a translation family (CycleGAN) rather than a sampler from noise
    cfg: TrainingConfig

    def build(self, spec: DataSpec) -> Nets: ...

    def optimizers(self, nets: Nets) -> Optimizers: ...

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]: ...

    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor: ...

    def input_example(self, n: int) -> np.ndarray:
        """An input batch for the sampling network (MLflow's model signature and export)."""

    def num_classes(self) -> int:
        """Classes ``sample(cond=...)`` accepts; 0 for an unconditional variant."""

    def held_out_metrics(self, nets: Nets, x: torch.Tensor, seed: int) -> dict[str, float]:
        """Metrics on real held-out images ``x`` beyond samples (the VAE's test ELBO); {} for GANs."""


def grad_norm(params: Iterable[nn.Parameter]) -> float:
    """L2 norm of all gradients together (what ``grad_norm/G`` reports)."""
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to hold the exponential moving average of its weights."""
    ema = copy.deepcopy(module).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """theta_ema <- beta * theta_ema + (1 - beta) * theta, with beta = min(decay, t / (t + 1)).

    For the first 1 / (1 - decay) steps this is the plain mean of all weights so far (so the random
    initialisation is not remembered for long); after that the configured decay holds. Buffers are
    not averaged: BatchNorm statistics of the averaged weights come from
    :func:`recalibrate_batchnorm` (G's own statistics do not fit them).
    """
    beta = min(decay, step / (step + 1.0))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - beta)


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, make_input: Callable[[torch.Generator], torch.Tensor],
                          batches: int = 8, seed: int = 0) -> None:
    """Re-estimate every BatchNorm's running mean/var from ``module``'s own activations.

    Averaged weights need statistics of their own (as in SWA's ``update_bn``): we reset them and
    run ``batches`` forward passes in train mode with momentum None (an exact cumulative mean).
    Deterministic for a seed; leaves the module in eval mode.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        module(make_input(generator))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    module.eval()
