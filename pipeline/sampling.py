"""Load a trained generator from ``models/<variant>/`` and draw samples from it.

The directory's format (``generator.pt``, ``config.json``, ``spec.json``, ``history.csv``,
``run.json``; ``seed-<s>/`` per seed) belongs to :mod:`pipeline.artifacts`; this module turns its
contents into a family and its networks and back.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts import read_generator, write_generator
from pipeline.config import VARIANT_SCHEMAS, variant_from_dict
from pipeline.data import DataSpec, Prepared, as_training_array
from pipeline.families import Family, Nets, family_for
from pipeline.images import make_grid, scatter_points, to_uint8


def save_generator(out_dir: str | Path, family: Family, nets: Nets, spec: DataSpec) -> None:
    """The sampling network (and the family's other ``saved_net_names``, e.g. the VAE's encoder),
    the resolved config and the data spec into ``out_dir`` (each file written atomically)."""
    name = family.sampling_net_name
    others = {other: nets[other].state_dict() for other in family.saved_net_names if other != name}
    write_generator(out_dir, {"net": name, "state_dict": nets[name].state_dict(), "others": others},
                    family.cfg.model_dump(mode="json"), asdict(spec))


def load_generator(model_dir: str | Path) -> tuple[Family, Nets, DataSpec]:
    """Rebuild the family's networks and load the trained sampling network (eval mode). A config
    saved before a field existed gets the value the field had in effect then (``saved_before``:
    a StyleGAN saved before the equalised learning rate has plain layers of the same shapes, so
    loading it as equalised would give wrong images without an error)."""
    saved, config, spec_fields = read_generator(model_dir)
    schema = VARIANT_SCHEMAS.get(config.get("family"))
    config = {**(schema.saved_before if schema else {}), **config}
    cfg, spec = variant_from_dict(config), DataSpec(**spec_fields)
    family = family_for(cfg)
    nets = family.build(spec)
    nets[saved["net"]].load_state_dict(saved["state_dict"])
    for name, state in saved.get("others", {}).items():  # e.g. the VAE's encoder
        nets[name].load_state_dict(state)
    for net in nets.values():
        net.eval()
    return family, nets, spec


def draw(family: Family, nets: Nets, n: int, seed: int, batch: int = 1000,
         labels: np.ndarray | None = None) -> np.ndarray:
    """``n`` samples as float32 [n, C, H, W] in [-1, 1] (or points [n, 2]), reproducible for a seed.

    ``labels`` [n] picks the class of each sample of a conditional variant (default: balanced classes).
    """
    generator = torch.Generator().manual_seed(seed)
    cond = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    chunks = [family.sample(nets, min(batch, n - i), generator, None if cond is None else cond[i:i + batch])
              .cpu().numpy() for i in range(0, n, batch)]
    return np.concatenate(chunks).astype(np.float32)


def sample_picture(family: Family, nets: Nets, data: Prepared) -> np.ndarray:
    """The evaluation picture of a trained variant (uint8 RGB): 2,500 points over the true modes, one
    row of ten samples per class for a conditional generator, test images with their translations
    and reconstructions for a translation family, else an 8 x 8 grid (followed by the family's
    ``extra_sample_figure``, e.g. a StyleGAN's style-mixing grid)."""
    if family.translates:
        return translation_picture(family, nets, data)
    if data.spec.point_dim:
        return scatter_points(draw(family, nets, 2500, seed=0), np.asarray(data.meta["modes"]))
    if family.num_classes():
        labels = np.repeat(np.arange(family.num_classes()), 10)
        return make_grid(to_uint8(draw(family, nets, len(labels), seed=0, labels=labels)), ncol=10)
    samples = make_grid(to_uint8(draw(family, nets, 64, seed=0)), ncol=8)
    extra = family.extra_sample_figure(nets)  # below the samples, after a white band (StyleGAN: style mixing)
    if extra is not None:
        return np.concatenate([samples, np.full((16, samples.shape[1], 3), 255, np.uint8), extra])
    return samples


def translation_picture(family: Family, nets: Nets, data: Prepared, n: int = 8) -> np.ndarray:
    """The first ``n`` test images of each domain, their translations and reconstructions (uint8 RGB)."""
    return family.translation_grid(nets, as_training_array(data.x_test[:n]), as_training_array(data.x_test_b[:n]))
