"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Code names -> paper names: ``G_AB`` = G (X -> Y), ``G_BA`` = F (Y -> X), ``D_B`` = D_Y (real B vs
G_AB(a)), ``D_A`` = D_X (real A vs G_BA(b)); lambda = ``lambda_cycle``.

One step on unpaired batches a (from A) and b (from B), generators first, as the reference code does:

  G phase: minimise  L_G = L_lsgan(D_B(G_AB(a))) + L_lsgan(D_A(G_BA(b)))                 (adversarial)
                         + lambda * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)      (cycle)
                         + lambda * lambda_identity * (|G_AB(b) - b|_1 + |G_BA(a) - a|_1) (identity)
           with L_lsgan(s) = E[(s - 1)^2] over patch scores; D_A and D_B are frozen.
  D phase: minimise  1/2 (E[(D_B(b) - 1)^2] + E[D_B(pool_B(G_AB(a)))^2]) and the same for D_A, where
           pool_X returns a fake from the 50-image history half the time (:class:`ImagePool`).

With ``augment`` (not in the paper), D_A and D_B see every image, real or generated, through the same
kind of random DiffAugment transform T in both phases (Zhao et al. 2020), the small-data remedy.

Adam (lr, beta1 0.5) for both generators together and for both discriminators together. The learning
rate is constant for ``epochs - decay`` epochs, then falls linearly towards 0 over the last ``decay``
epochs (:func:`lr_factor`); it is a function of the epoch, so the schedule's state is the epoch the
checkpoint stores. The pools are modules with buffers, so checkpoints hold them too.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch

from pipeline.augment import diff_augment
from pipeline.config import CycleganConfig
from pipeline.data import DataSpec
from pipeline.families.base import Family, Nets, Optimizers, StepEnv, grad_norm
from pipeline.images import make_grid, to_uint8
from pipeline.losses import l1_distance, lsgan_discriminator, lsgan_generator
from pipeline.models.cyclegan import ImagePool, PatchDiscriminator, ResnetGenerator

DIRECTIONS = {"AB": "G_AB", "BA": "G_BA"}  # translation direction -> the generator that does it


def lr_factor(epoch: int, epochs: int, decay: int) -> float:
    """Multiplier of the base lr in (0-based) ``epoch``: 1 for the first ``epochs - decay`` epochs,
    then 1 - (epoch + 1 - (epochs - decay)) / (decay + 1), the reference code's linear rule."""
    return 1.0 - max(0, epoch + 1 - (epochs - decay)) / float(decay + 1)


class CycleGANFamily(Family):
    """A translation family: ``translates`` is True (its config class says so)."""
    family_name = "cyclegan"  # `family: cyclegan` in params.yaml

    sampling_net_name = "G_AB"
    saved_net_names = ("G_AB", "G_BA")

    def __init__(self, cfg: CycleganConfig):
        super().__init__(cfg)
        self._shape: tuple[int, int, int] = (1, 16, 16)  # set by build() from the data

    def build(self, spec: DataSpec) -> Nets:
        cfg, c = self.cfg, spec.channels
        self._shape = (c, spec.image_size, spec.image_size)
        return {
            "G_AB": ResnetGenerator(c, c, cfg.g_width, cfg.g_blocks, cfg.g_downsample),
            "G_BA": ResnetGenerator(c, c, cfg.g_width, cfg.g_blocks, cfg.g_downsample),
            "D_A": PatchDiscriminator(c, cfg.d_width, cfg.d_layers, cfg.d_norm),
            "D_B": PatchDiscriminator(c, cfg.d_width, cfg.d_layers, cfg.d_norm),
            "pool_A": ImagePool(cfg.pool_size, self._shape), "pool_B": ImagePool(cfg.pool_size, self._shape),
        }

    def optimizers(self, nets: Nets) -> Optimizers:
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"G": torch.optim.Adam(chain(nets["G_AB"].parameters(), nets["G_BA"].parameters()), self.cfg.lr, betas),
                "D": torch.optim.Adam(chain(nets["D_A"].parameters(), nets["D_B"].parameters()), self.cfg.lr, betas)}

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        cfg = self.cfg
        real_a, real_b = batch  # [N, C, H, W] each, in [-1, 1]; unpaired
        lr = cfg.lr * lr_factor(env.epoch, cfg.epochs, cfg.decay())
        for opt in opts.values():
            for group in opt.param_groups:
                group["lr"] = lr
        G_AB, G_BA = nets["G_AB"], nets["G_BA"]

        def D_A(x: torch.Tensor) -> torch.Tensor:  # what D sees: T(x), T = identity without augment
            return nets["D_A"](diff_augment(x, cfg.augment))

        def D_B(x: torch.Tensor) -> torch.Tensor:
            return nets["D_B"](diff_augment(x, cfg.augment))

        d_params = [*nets["D_A"].parameters(), *nets["D_B"].parameters()]

        # G phase: D_A and D_B frozen (no gradients computed for them).
        for p in d_params:
            p.requires_grad_(False)
        identity_weight = cfg.lambda_cycle * cfg.lambda_identity
        with env.autocast():
            fake_b, fake_a = G_AB(real_a), G_BA(real_b)
            adversarial = lsgan_generator(D_B(fake_b)) + lsgan_generator(D_A(fake_a))
            cycle = l1_distance(G_BA(fake_b), real_a) + l1_distance(G_AB(fake_a), real_b)
            identity = (l1_distance(G_AB(real_b), real_b) + l1_distance(G_BA(real_a), real_a)
                        if identity_weight > 0 else torch.zeros((), device=real_a.device))
            loss_g = adversarial + cfg.lambda_cycle * cycle + identity_weight * identity
        g_params = [*G_AB.parameters(), *G_BA.parameters()]
        opts["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        env.sync_grads(g_params)
        g_norm = grad_norm(g_params)
        opts["G"].step()

        # D phase: each D sees real images of its domain and (pooled) fakes of the same domain.
        for p in d_params:
            p.requires_grad_(True)
        with env.autocast():
            loss_d_b = lsgan_discriminator(D_B(real_b), D_B(nets["pool_B"].query(fake_b.detach())))
            loss_d_a = lsgan_discriminator(D_A(real_a), D_A(nets["pool_A"].query(fake_a.detach())))
        opts["D"].zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        env.sync_grads(d_params)
        opts["D"].step()
        return {"loss/G": float(loss_g.detach()), "loss/G_adv": float(adversarial.detach()),
                "loss/cycle": float(cycle.detach()), "loss/identity": float(identity.detach()),
                "loss/D_A": float(loss_d_a.detach()), "loss/D_B": float(loss_d_b.detach()),
                "grad_norm/G": g_norm, "lr": lr}

    @torch.no_grad()
    def translate(self, nets: Nets, images: np.ndarray, direction: str, batch: int = 500) -> np.ndarray:
        """Images [N, C, H, W] in [-1, 1] of the source domain -> their translations (float32)."""
        assert direction in DIRECTIONS, f"direction must be one of {list(DIRECTIONS)}, got {direction!r}"
        G = nets[DIRECTIONS[direction]].eval()
        device = next(G.parameters()).device
        out = [G(torch.as_tensor(images[i:i + batch], dtype=torch.float32, device=device)).cpu().numpy()
               for i in range(0, len(images), batch)]
        return np.concatenate(out).astype(np.float32)

    def translation_grid(self, nets: Nets, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """uint8 RGB picture, one column per image: rows a, G_AB(a), G_BA(G_AB(a)), b, G_BA(b), G_AB(G_BA(b))."""
        ab = self.translate(nets, a, "AB")
        ba = self.translate(nets, b, "BA")
        rows = [a, ab, self.translate(nets, ab, "BA"), b, ba, self.translate(nets, ba, "AB")]
        return make_grid(to_uint8(np.concatenate(rows)), ncol=len(a))

    def input_example(self, n: int) -> np.ndarray:
        """A batch of domain-A images (what the logged ``G_AB`` model takes)."""
        return np.random.default_rng(0).uniform(-1, 1, (n, *self._shape)).astype(np.float32)

    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        raise TypeError("cyclegan translates images instead of sampling them: use "
                        "`python -m pipeline translate VARIANT --direction AB --in DIR --out DIR`")
