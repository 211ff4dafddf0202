"""The VAE baseline (Kingma & Welling 2014): the measured side of the GAN vs VAE comparison.

One step maximises the ELBO of a batch, log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)),
with one reparameterised sample z = mu + sigma * eps, eps ~ N(0, I), and a Gaussian decoder
p(x|z) = N(Dec(z), recon_std^2 I) on pixels in [-1, 1]. Samples: Dec(z), z ~ N(0, I). ``E`` is
saved with the decoder so that evaluation can report the test ELBO and reconstruction error.
"""

from __future__ import annotations

import torch

from pipeline.config import VaeConfig
from pipeline.data import DataSpec
from pipeline.families.base import Family, Nets, Optimizers, ReportTable, StepEnv, grad_norm
from pipeline.losses import negative_elbo
from pipeline.models.vae import vae_networks


class VAEFamily(Family):
    family_name = "vae"  # `family: vae` in params.yaml
    sampling_net_name = "Dec"
    saved_net_names = ("Dec", "E")
    gan_vs_vae_side = "VAE"
    report_sections = (ReportTable("VAE on the test split", (), (
        ("elbo", "test ELBO (nats/image)", None), ("kl", "KL (nats)", None),
        ("recon_mse", "reconstruction MSE", None))),)
    cfg: VaeConfig

    def build(self, spec: DataSpec) -> Nets:
        return vae_networks(spec.channels, spec.image_size, self.cfg.z_dim, self.cfg.width)

    def optimizers(self, nets: Nets) -> Optimizers:
        params = [*nets["E"].parameters(), *nets["Dec"].parameters()]
        return {"VAE": torch.optim.Adam(params, lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2))}

    def reconstruct(self, nets: Nets, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_hat, mu, logvar) with one reparameterised draw z = mu + exp(logvar / 2) * eps."""
        mu, logvar = nets["E"](x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return nets["Dec"](z), mu, logvar

    def train_step(self, nets: Nets, opts: Optimizers, batch: tuple[torch.Tensor, torch.Tensor],
                   env: StepEnv) -> dict[str, float]:
        x = batch[0]  # [N, C, H, W] in [-1, 1]
        with env.autocast():
            x_hat, mu, logvar = self.reconstruct(nets, x)
            loss, nll, kl = negative_elbo(x, x_hat, mu, logvar, self.cfg.recon_std)
        opts["VAE"].zero_grad(set_to_none=True)
        loss.backward()
        params = [*nets["E"].parameters(), *nets["Dec"].parameters()]
        env.sync_grads(params)
        norm = grad_norm(params)
        opts["VAE"].step()
        return {"loss/neg_elbo": float(loss.detach()), "loss/recon_nll": float(nll.detach()),
                "loss/kl": float(kl.detach()), "grad_norm/VAE": norm}

    @torch.no_grad()
    def held_out_metrics(self, nets: Nets, x: torch.Tensor, seed: int) -> dict[str, float]:
        """Test-split ``elbo`` (nats per image, one z per image), ``recon_mse`` (per pixel, of the
        posterior mean's reconstruction) and ``kl``."""
        for net in nets.values():
            net.eval()
        torch.manual_seed(seed)
        x_hat, mu, logvar = self.reconstruct(nets, x)
        loss, _, kl = negative_elbo(x, x_hat, mu, logvar, self.cfg.recon_std)
        mse = float((nets["Dec"](mu) - x).pow(2).mean())
        return {"elbo": -float(loss), "kl": float(kl), "recon_mse": mse}

    @torch.no_grad()
    def sample(self, nets: Nets, n: int, generator: torch.Generator,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        assert cond is None, "the VAE is unconditional"
        dec = nets["Dec"].eval()
        device = next(dec.parameters()).device
        return dec(torch.randn(n, self.cfg.z_dim, generator=generator).to(device))
