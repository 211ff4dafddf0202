"""Family registry: ``family`` name in params -> class constructed with the variant's config."""

from __future__ import annotations

from pipeline.config import TrainingConfig
from pipeline.families.base import Family, Nets, Optimizers, StepEnv
from pipeline.families.cyclegan import CycleGANFamily
from pipeline.families.dcgan import DCGANFamily
from pipeline.families.gan import GANFamily
from pipeline.families.stylegan import StyleGANFamily
from pipeline.families.vae import VAEFamily
from pipeline.families.wgan_gp import WGANGPFamily

FAMILIES: dict[str, type] = {
    "dcgan": DCGANFamily,
    "gan": GANFamily,
    "vae": VAEFamily,
    "cyclegan": CycleGANFamily,
    "stylegan": StyleGANFamily,
    "wgan_gp": WGANGPFamily,
}


def family_for(cfg: TrainingConfig) -> Family:
    """The family object for a validated variant config."""
    return FAMILIES[cfg.family](cfg)


__all__ = ["FAMILIES", "Family", "Nets", "Optimizers", "StepEnv", "family_for"]
