"""CycleGAN's networks (Zhu et al. 2017; the reference pytorch-CycleGAN-and-pix2pix code), scaled
for small images, and the history pool of generated images.

- :class:`ResnetGenerator`: c7s1-ngf, ``n_down`` stride-2 convolutions (doubling channels),
  ``n_blocks`` residual blocks, as many stride-2 transposed convolutions back, c7s1-out, tanh.
  Instance norm, reflection padding. 16 x 16 images reach a 4 x 4 bottleneck.
- :class:`PatchDiscriminator`: the PatchGAN: ``n_layers`` stride-2 4 x 4 convolutions, one stride-1,
  then one output channel of per-patch scores (no sigmoid: the LSGAN loss takes raw scores).
  ``n_layers = 3`` is the paper's 70 x 70 PatchGAN; 2 suits 16 x 16 images (2 x 2 patch scores).
- :class:`ImagePool`: Shrivastava et al.'s buffer of 50 past fakes; its contents are buffers of the
  module, so they are part of the checkpoint's state_dicts and a resumed run continues exactly.
"""

from __future__ import annotations

import torch
from torch import nn


def init_weights(module: nn.Module) -> None:
    """Reference init: conv weights ~ N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ResnetBlock(nn.Module):
    """x + (pad, conv3, IN, ReLU, pad, conv3, IN)(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ngf: int = 32, n_blocks: int = 3, n_down: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
                                   nn.ReLU(True)]
        width = ngf
        for _ in range(n_down):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResnetBlock(width) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.factor = 2 ** n_down
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4 and x.shape[-1] % self.factor == 0 and x.shape[-1] >= 2 * self.factor, (
            f"images must be [N, C, S, S] with S a multiple of {self.factor} and >= {2 * self.factor}, "
            f"got {list(x.shape)}")
        return self.net(x)  # [N, out_channels, S, S] in [-1, 1]


class PatchDiscriminator(nn.Module):
    """``norm``: instance norm after every inner convolution (the reference), or none. On small images
    the last maps are only 3 x 3, and instance norm there removes each channel's mean over 9 positions."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 2, norm: str = "instance"):
        super().__init__()
        assert norm in ("instance", "none"), f"norm must be 'instance' or 'none', got {norm!r}"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):  # n_layers - 1 more stride-2 convolutions, then one stride-1
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                       nn.InstanceNorm2d(ndf * mult) if norm == "instance" else nn.Identity(), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [N, 1, h, w] patch scores


class ImagePool(nn.Module):
    """History of generated images shown to D (reduces oscillation; Shrivastava et al. 2017).

    ``query(fakes)``: while the pool is filling, each fake is stored and returned as is; once full,
    each fake is, with probability 1/2, swapped for a random stored one (which is returned, the new
    fake taking its place), else returned as is. Size 0 returns the fakes unchanged. Randomness comes
    from torch's global generator, which the training loop seeds per epoch and rank.
    """

    def __init__(self, size: int, shape: tuple[int, int, int]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))  # [size, C, H, W]
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for fake in fakes.detach():
            if int(self.count) < self.size:
                self.images[int(self.count)] = fake
                self.count += 1
                out.append(fake)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = fake
            else:
                out.append(fake)
        return torch.stack(out)
