"""PacGAN packing: the reshape against hand-written values, and packed D for both families."""

import pytest
import torch

from pipeline.config import ConfigError, parse_params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.models.packing import pack
from tests.helpers import tiny_params, tiny_points_params


def test_pack_concatenates_consecutive_points():
    x = torch.tensor([[1., 2.], [3., 4.], [5., 6.], [7., 8.]])
    assert pack(x, 2).tolist() == [[1., 2., 3., 4.], [5., 6., 7., 8.]]
    assert pack(x, 1).tolist() == x.tolist()


def test_pack_stacks_images_along_channels():
    x = torch.arange(4 * 1 * 2 * 2, dtype=torch.float32).reshape(4, 1, 2, 2)
    packed = pack(x, 2)
    assert packed.shape == (2, 2, 2, 2)
    assert torch.equal(packed[1, 0], x[2, 0]) and torch.equal(packed[1, 1], x[3, 0])


def test_pack_refuses_a_batch_it_cannot_split():
    with pytest.raises(AssertionError, match="multiple of pack"):
        pack(torch.zeros(5, 2), 2)


@pytest.mark.parametrize("family, spec, shape", [
    ("gan", DataSpec(channels=0, image_size=0, num_classes=8, point_dim=2), (12, 2)),
    ("dcgan", DataSpec(channels=1, image_size=16, num_classes=10, point_dim=0), (12, 1, 16, 16)),
])
def test_packed_discriminator_gives_one_logit_per_pack(family, spec, shape):
    raw = tiny_points_params() if family == "gan" else tiny_params()
    variant = next(v for v in raw["variants"].values() if v["family"] == family)
    variant.update(pack=3, batch_size=12)
    cfg = next(c for c in parse_params(raw).variants.values() if c.family == family)
    nets = family_for(cfg).build(spec)
    assert nets["D"](torch.zeros(shape)).shape == (4,)


def test_pack_must_divide_the_per_worker_batch():
    raw = tiny_points_params()
    raw["variants"]["gan_ns"].update(pack=3, batch_size=16, num_workers=2)
    with pytest.raises(ConfigError, match=r"variants.gan_ns.pack = 3: must divide the per-worker batch"):
        parse_params(raw)
