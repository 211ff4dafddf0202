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
  direction)`` and ``translation_grid(nets, a, b)`` instead of sampling from noise (the fact is the
  config class's, :attr:`pipeline.schemas.TrainingConfig.translates`, so params validation knows it).

:class:`Family` is the base class with the defaults; a family overrides only what differs. The hooks
through which the rest of the pipeline asks a family, never naming it:

- ``extra_eval_metrics(nets, evaluator, n, seed)``: metrics beyond the image metrics (StyleGAN's PPL).
- ``extra_sample_figure(nets)``: a picture shown below the evaluation's sample grid (StyleGAN's
  style-mixing grid); ``style_mixing_grid(nets, n, seed)``: the images of that grid (``python -m
  pipeline mix``), None for a family without styles.
- ``preflight_problems(variant, dataset, n_train)``: config problems only visible once the data is
  known (a StyleGAN growth schedule longer than the training), before Ray starts.
- ``report_sections``: tables of the family's own metrics in the comparison report;
  ``gan_vs_vae_side`` ("GAN", "VAE" or None): which side of the report's GAN vs VAE comparison
  its variants are on; ``compares_generator_losses``: its runs log G's gradient norm under every
  generator loss (the report's minimax vs non-saturating plot).

All checkpoint state is ``state_dict``s of ``Nets`` and the optimisers (see ``pipeline.train.checkpoint``).
"""

from __future__ import annotations

import copy
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager, Iterable

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


@dataclass(frozen=True)
class ReportTable:
    """A report section of one family's own metrics: ``columns`` are (metrics key, column title,
    floor key or None), one row per variant of the family (``pipeline.report``)."""

    title: str
    text: tuple[str, ...]
    columns: tuple[tuple[str, str, str | None], ...]


class Family:
    """The defaults every family inherits; subclasses implement ``build``, ``optimizers``,
    ``train_step`` and ``sample`` and override the hooks where they differ."""

    family_name: ClassVar[str | None] = None  # `family:` in params.yaml; None: a shared base, not a family
    sampling_net_name: ClassVar[str] = "G_ema"
    saved_net_names: ClassVar[tuple[str, ...]] = ("G_ema",)  # what models/<variant>/ keeps (the sampling net first)
    report_sections: ClassVar[tuple[ReportTable, ...]] = ()
    gan_vs_vae_side: ClassVar[str | None] = None
    compares_generator_losses: ClassVar[bool] = False

    def __init__(self, cfg: TrainingConfig):
        self.cfg = cfg

    @property
    def translates(self) -> bool:
        """A translation family (CycleGAN) rather than a sampler from noise."""
        return type(self.cfg).translates

    def build(self, spec: DataSpec) -> Nets:
        raise NotImplementedError

    def optimizers(self, nets: Nets) -> Optimizers:
        raise NotImplementedError

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        raise NotImplementedError

    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def input_example(self, n: int) -> np.ndarray:
        """An input batch for the sampling network (MLflow's model signature and export): z ~ N(0, I)."""
        return np.random.default_rng(0).standard_normal((n, self.cfg.z_dim)).astype(np.float32)

    def num_classes(self) -> int:
        """Classes ``sample(cond=...)`` accepts; 0 for an unconditional variant."""
        return 0

    def held_out_metrics(self, nets: Nets, x: torch.Tensor, seed: int) -> dict[str, float]:
        """Metrics on real held-out images ``x`` beyond samples (the VAE's test ELBO); {} for GANs."""
        return {}

    def extra_eval_metrics(self, nets: Nets, evaluator: Any, n: int, seed: int) -> dict[str, Any]:
        """Metrics only this family has, measured with the dataset's evaluator at the image metrics' N."""
        return {}

    def style_mixing_grid(self, nets: Nets, n: int, seed: int) -> np.ndarray | None:
        """[(n + 1)^2, C, H, W] images of an (n + 1) x (n + 1) style-mixing grid; None without styles."""
        return None

    def extra_sample_figure(self, nets: Nets) -> np.ndarray | None:
        """A uint8 RGB picture, as wide as the 8 x 8 sample grid, shown below it; None for none."""
        return None

    def preflight_problems(self, variant: str, dataset: Any, n_train: int) -> list[str]:
        """Config problems that need the prepared data (``n_train`` training examples of ``dataset``)."""
        return []


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
