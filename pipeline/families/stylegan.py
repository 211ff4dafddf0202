"""StyleGAN family (Karras et al. 2019): style-based G with a mapping network, style mixing
regularisation and progressive growing, trained with the non-saturating loss and R1.

One step, T = DiffAugment (identity when ``augment`` is empty), x the real batch resized to the
current resolution (blended with its half-resolution version while a resolution fades in, as G's
output is):
  D phase: minimise softplus(D(T(G(z)))) + softplus(-D(T(x))) + (gamma / 2) * ||grad_x D(T(x))||^2
           (the last term on every k-th step only, times k, with k = ``r1_every``)
  G phase: minimise softplus(-D(T(G(z))))   (= -log sigmoid, the non-saturating loss)
The step reports ``D/logit_gap`` = mean D(T(x)) - mean D(T(G(z))), the health signal (0: D at
chance; docs/stylegan.md), and ``loss/R1`` as weighted in (k ||grad||^2 on R1 steps, 0 between),
so that its epoch mean is the mean penalty whatever k. With probability ``mixing_prob`` a sample's styles switch from w1 = f(z1) to w2 = f(z2) at a random
layer. The growth ``(phase, alpha)`` is a function of the images shown so far
(:meth:`StyleGANFamily.growth`), so a resumed run continues inside a phase at the same point;
G, D and G_ema also keep it (and w's running mean) in their state_dicts.

What only a style-based generator has (:mod:`pipeline.style_eval`) comes through the family hooks:
PPL, the truncation sweep and style-mixing class following as extra evaluation metrics, the
style-mixing grid below the evaluation's samples, a preflight check that the epochs reach full size,
and a report table.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.augment import diff_augment
from pipeline.data import DataSpec
from pipeline.families.base import Family, Nets, Optimizers, ReportTable, StepEnv, grad_norm, make_ema, update_ema
from pipeline.images import make_grid, to_uint8
from pipeline.models.stylegan import StyleDiscriminator, StyleGenerator, mixed_latents, num_resolutions


class StyleGANFamily(Family):
    family_name = "stylegan"  # `family: stylegan` in params.yaml
    report_sections = (ReportTable("StyleGAN", (
        "Perceptual path length (squared evaluator-feature distance / eps^2 between images 1e-4 apart on "
        "a path between two latents, 1st-99th percentile): lower is smoother. Style mixing: images taking the "
        "4x4-8x8 styles from one latent and the rest from another; the share whose evaluator class is that "
        "of the coarse source, and of the fine source (pairs of sources of different classes). Truncation "
        "sweep: FID and diversity (mean feature distance between independent samples) at several psi. "
        "The style-mixing grid is under Samples, below the variant's samples.",), (
        ("ppl_z", "PPL in Z", None), ("ppl_w", "PPL in W", None),
        ("mix_follows_coarse", "mixed class = coarse source", None),
        ("mix_follows_fine", "mixed class = fine source", None),
        *((f"truncation/{psi}/{key}", f"psi {psi} {title}", None)
          for psi in (1.0, 0.7, 0.5) for key, title in (("fid", "FID"), ("diversity", "diversity"))))),)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.last_phase = 0  # set by build() from the image size

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        self.last_phase = num_resolutions(spec.image_size) - 1
        G = StyleGenerator(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, spec.channels, spec.image_size, cfg.g_width,
                           cfg.equalized_lr, cfg.halve_width_above)
        D = StyleDiscriminator(spec.channels, spec.image_size, cfg.d_width, cfg.equalized_lr, cfg.halve_width_above)
        return {"G": G, "D": D, "G_ema": make_ema(G)}

    def optimizers(self, nets: Nets) -> Optimizers:
        """Adam for G and D; the mapping network learns ``mapping_lr_mult`` times slower (as in
        StyleGAN, 0.01: w drifts slowly, so the synthesis layers can follow it)."""
        cfg = self.cfg
        G = nets["G"]
        mapping = list(G.mapping.parameters())
        synthesis = list(G.synthesis.parameters())
        betas = (cfg.beta1, cfg.beta2)
        return {"G": torch.optim.Adam([{"params": synthesis, "lr": cfg.lr_g},
                                       {"params": mapping, "lr": cfg.lr_g * cfg.mapping_lr_mult}], betas=betas),
                "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr_d, betas=betas)}

    def growth(self, images_seen: int) -> tuple[int, float]:
        """(phase, alpha) after ``images_seen`` training images: ``phase_images`` at 4x4, then for
        each higher resolution a linear fade-in over ``fade_images`` and ``phase_images`` at full
        strength; the last resolution stays until training ends."""
        stable, fade = self.cfg.phase_images, self.cfg.fade_images
        t = images_seen - stable
        if t < 0 or self.last_phase == 0:
            return 0, 1.0
        for phase in range(1, self.last_phase + 1):
            if t < fade:
                return phase, t / fade
            t -= fade
            if phase == self.last_phase or t < stable:
                return phase, 1.0
            t -= stable
        return self.last_phase, 1.0

    def images_to_full_size(self, image_size: int | None = None) -> int:
        """Images shown before the last resolution (of ``image_size``, default the built one) is
        fully faded in: 4x4, then a fade and a stable stretch per resolution, except that the last
        one needs only its fade."""
        L = self.last_phase if image_size is None else num_resolutions(image_size) - 1
        stable, fade = self.cfg.phase_images, self.cfg.fade_images
        return stable + L * fade + (L - 1) * stable if L else 0

    def set_growth(self, nets: Nets, phase: int, alpha: float) -> None:
        for name in ("G", "D", "G_ema"):
            nets[name].set_growth(phase, alpha)

    def latents(self, n: int, device: torch.device, num_layers: int, phase: int) -> torch.Tensor:
        """[n, num_layers, z_dim]: one z per sample, or with probability ``mixing_prob`` two, switching
        at a crossover layer drawn uniformly from the layers active at ``phase`` (1 .. 2 (phase + 1) - 1),
        so that mixing happens at its rate while the generator is still small too."""
        z1 = torch.randn(n, self.cfg.z_dim, device=device)
        z2 = torch.randn(n, self.cfg.z_dim, device=device)
        crossover = torch.randint(1, min(2 * (phase + 1), num_layers), (n,), device=device)
        mixing = torch.rand(n, device=device) < self.cfg.mixing_prob
        crossover = torch.where(mixing, crossover, torch.full_like(crossover, num_layers))
        return mixed_latents(z1, z2, crossover, num_layers)

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        cfg = self.cfg
        G, D = nets["G"], nets["D"]
        phase, alpha = self.growth(env.step * cfg.batch_size)
        self.set_growth(nets, phase, alpha)
        real = real_at(batch[0], 4 * 2 ** phase, alpha)
        zs = self.latents(real.shape[0], env.device, G.num_layers, phase)

        def discriminate(x: torch.Tensor) -> torch.Tensor:
            return D(diff_augment(x, cfg.augment))

        # D phase: fakes detached; R1 penalises D's gradient at the (augmented) reals it sees, on every
        # r1_every-th step, weighted r1_every times (lazy: the same penalty on average, at a fraction
        # of the second backward pass).
        with env.autocast():
            fake = G(zs)
        r1_now = cfg.r1_gamma > 0 and env.step % cfg.r1_every == 0
        seen_real = diff_augment(real, cfg.augment).detach().requires_grad_(r1_now)
        with env.autocast():
            real_logits = D(seen_real)
            fake_logits = discriminate(fake.detach())
            loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        r1 = torch.zeros((), device=real.device)  # the penalty as weighted in: r1_every x ||grad||^2, or 0
        if r1_now:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), seen_real, create_graph=True)
            r1 = cfg.r1_every * grad.float().pow(2).sum(dim=(1, 2, 3)).mean()
        opts["D"].zero_grad(set_to_none=True)
        (loss_d + 0.5 * cfg.r1_gamma * r1).backward()
        env.sync_grads(D.parameters())
        opts["D"].step()

        # G phase: the non-saturating loss through the just-updated D.
        with env.autocast():
            gen_logits = discriminate(fake)
            loss_g = F.softplus(-gen_logits).mean()
        opts["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        env.sync_grads(G.parameters())
        g_norm = grad_norm(G.parameters())
        opts["G"].step()

        with torch.no_grad():  # w's running mean (the truncation centre), then the EMA generator
            G.mapping.track_mean(G.mapping(zs[:, 0]))
        update_ema(nets["G_ema"], G, cfg.ema_decay, env.step)
        nets["G_ema"].mapping.w_avg.copy_(G.mapping.w_avg)
        return {"loss/D": float(loss_d.detach()), "loss/G": float(loss_g.detach()), "loss/R1": float(r1.detach()),
                "grad_norm/G": g_norm, "D/real": float(torch.sigmoid(real_logits.detach()).float().mean()),
                "D/fake": float(torch.sigmoid(fake_logits.detach()).float().mean()),
                "D/logit_gap": float(real_logits.detach().float().mean() - fake_logits.detach().float().mean()),
                "growth/phase": float(phase), "growth/alpha": float(alpha)}

    def preflight_problems(self, variant: str, dataset, n_train: int) -> list[str]:
        """Epochs that end before the growth schedule reaches the dataset's size would save a
        generator of smaller images than the evaluation needs."""
        cfg = self.cfg
        needed = self.images_to_full_size(dataset.image_size)
        per_epoch = (n_train // cfg.batch_size) * cfg.batch_size  # whole global batches only
        shown = cfg.epochs * per_epoch
        if shown >= needed:
            return []
        return [f"params.yaml: variants.{variant}.epochs = {cfg.epochs}: {shown:,} training images, but the growth "
                f"schedule (phase_images {cfg.phase_images}, fade_images {cfg.fade_images}) reaches full size after "
                f"{needed:,}; allowed: epochs >= {-(-needed // per_epoch)} or a shorter schedule"]

    def extra_eval_metrics(self, nets: Nets, evaluator, n: int, seed: int) -> dict:
        """PPL in Z and W, the truncation sweep and style mixing's class following."""
        from pipeline.style_eval import style_metrics

        return style_metrics(self, nets, evaluator, n, seed)

    def style_mixing_grid(self, nets: Nets, n: int, seed: int) -> np.ndarray:
        from pipeline.style_eval import mixing_grid

        return mixing_grid(nets[self.sampling_net_name].eval(), n, seed)

    def extra_sample_figure(self, nets: Nets) -> np.ndarray:
        """The 8 x 8 style-mixing grid (7 sources per side)."""
        return make_grid(to_uint8(self.style_mixing_grid(nets, 7, seed=0)), ncol=8)

    @torch.no_grad()
    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None, psi: float | None = None) -> torch.Tensor:
        """``n`` images from G_ema at its current growth; truncation ``psi`` (default: the
        variant's ``truncation_psi``; 1 = none) pulls each w towards the running mean of w."""
        assert cond is None, "stylegan variants are unconditional"
        G = nets[self.sampling_net_name].eval()
        device = next(G.parameters()).device
        z = torch.randn(n, self.cfg.z_dim, generator=generator).to(device)
        noise_seed = int(torch.randint(2 ** 31 - 1, (1,), generator=generator))
        # The per-pixel noise is drawn from a seed taken from the same generator.
        return G.render(G.styles(z, psi=self.cfg.truncation_psi if psi is None else psi), noise_seed)


def real_at(x: torch.Tensor, size: int, alpha: float) -> torch.Tensor:
    """Real images at G's current output: area-downsampled to ``size``; while that resolution fades
    in (alpha < 1) blended with its half-resolution version upsampled, as G's output is blended."""
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    if alpha < 1 and size > 4:
        x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
    return x
