"""StyleGAN family (Karras et al. 2019): style-based G with a mapping network, style mixing
regularisation and progressive growing, trained with the non-saturating loss and R1.

One step, T = DiffAugment (identity when ``augment`` is empty), x the real batch resized to the
current resolution (blended with its half-resolution version while a resolution fades in, as G's
output is):
  D phase: minimise softplus(D(T(G(z)))) + softplus(-D(T(x))) + (gamma / 2) * ||grad_x D(T(x))||^2
  G phase: minimise softplus(-D(T(G(z))))   (= -log sigmoid, the non-saturating loss)
With probability ``mixing_prob`` a sample's styles switch from w1 = f(z1) to w2 = f(z2) at a random
layer. The growth ``(phase, alpha)`` is a function of the images shown so far
(:meth:`StyleGANFamily.growth`), so a resumed run continues inside a phase at the same point;
G, D and G_ema also keep it (and w's running mean) in their state_dicts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.augment import diff_augment
from pipeline.data import DataSpec
from pipeline.families.base import Nets, Optimizers, StepEnv, grad_norm, make_ema, update_ema
from pipeline.models.stylegan import StyleDiscriminator, StyleGenerator, mixed_latents, num_resolutions


class StyleGANFamily:
    sampling_net_name = "G_ema"
    saved_net_names = ("G_ema",)
    translates = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.last_phase = 0  # set by build() from the image size

    def build(self, spec: DataSpec) -> Nets:
        cfg = self.cfg
        self.last_phase = num_resolutions(spec.image_size) - 1
        G = StyleGenerator(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, spec.channels, spec.image_size, cfg.g_width)
        D = StyleDiscriminator(spec.channels, spec.image_size, cfg.d_width)
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

        # D phase: fakes detached; R1 penalises D's gradient at the (augmented) reals it sees.
        with env.autocast():
            fake = G(zs)
        seen_real = diff_augment(real, cfg.augment).detach().requires_grad_(cfg.r1_gamma > 0)
        with env.autocast():
            real_logits = D(seen_real)
            fake_logits = discriminate(fake.detach())
            loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        r1 = torch.zeros((), device=real.device)
        if cfg.r1_gamma > 0:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), seen_real, create_graph=True)
            r1 = grad.float().pow(2).sum(dim=(1, 2, 3)).mean()
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
                "growth/phase": float(phase), "growth/alpha": float(alpha)}

    def num_classes(self) -> int:
        return 0

    def held_out_metrics(self, nets: Nets, x: torch.Tensor, seed: int) -> dict[str, float]:
        return {}

    def input_example(self, n: int) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((n, self.cfg.z_dim)).astype(np.float32)

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
        return render(G, G.styles(z, psi=self.cfg.truncation_psi if psi is None else psi), noise_seed)


# Images x pixels per synthesis pass: 5,000 images at 16x16 (PPL's pairs at the committed size, one
# pass there as before), 1,250 at 32x32, 312 at 64x64, so that memory does not grow with the image
# size (one pass of 5,000 64x64 images of a 64-channel G would hold ~5 GB per activation).
RENDER_PIXELS = 5_000 * 16 * 16


@torch.no_grad()
def render(G: StyleGenerator, ws: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """Images [N, C, S, S] of the per-layer styles ``ws`` [N, num_layers, w_dim] at G's current growth,
    the per-pixel noise drawn from ``noise_seed`` (torch's global random state is left as it was).

    All noise is drawn before rendering, as one forward pass would draw it, and the images are then
    synthesised in chunks of at most ``RENDER_PIXELS`` pixels: the result does not depend on the
    chunking, and a batch at 16x16 of up to 5,000 images is one pass, bit for bit as before.
    """
    phase, alpha = G.growth
    device = ws.device
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if device.type == "cuda" else []):
        torch.manual_seed(noise_seed)
        noise = G.synthesis.draw_noise(ws.shape[0], phase, device)  # one [N, 1, s, s] per style layer
    chunk = max(1, RENDER_PIXELS // (4 * 2 ** phase) ** 2)
    return torch.cat([G.synthesis(ws[i:i + chunk], phase, alpha, [m[i:i + chunk] for m in noise])
                      for i in range(0, ws.shape[0], chunk)])


def real_at(x: torch.Tensor, size: int, alpha: float) -> torch.Tensor:
    """Real images at G's current output: area-downsampled to ``size``; while that resolution fades
    in (alpha < 1) blended with its half-resolution version upsampled, as G's output is blended."""
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    if alpha < 1 and size > 4:
        x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
    return x
