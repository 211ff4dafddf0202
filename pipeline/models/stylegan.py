"""StyleGAN (Karras et al. 2019) at small scale: mapping network, style-based synthesis with AdaIN
and per-pixel noise, style mixing, truncation, and a progressively growing G and D.

Resolutions are 4, 8, ..., ``image_size``; resolution index r = 0 is 4x4. The synthesis network has
two style layers per resolution (``num_layers = 2 * num_resolutions``): layer 2r and 2r + 1 belong
to resolution 4 * 2^r. Growing is driven from outside by ``(phase, alpha)``: ``phase`` is the index
of the highest active resolution, ``alpha`` in [0, 1] the fade-in of that resolution (1: fully in).

Every weight layer of G and D has the equalised learning rate (:mod:`pipeline.models.equalized`),
as in the paper; ``equalized_lr=False`` builds the same networks from plain PyTorch layers (the
comparison is in docs/stylegan.md: without it the discriminator sits at chance).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.equalized import conv2d, linear


def num_resolutions(image_size: int) -> int:
    """4x4 up to ``image_size`` (a power of two >= 4): 4 -> 1, 8 -> 2, 16 -> 3."""
    return int(math.log2(image_size)) - 1


def resolution_widths(image_size: int, width: int, halve_above: int | None = None) -> list[int]:
    """Channels at each resolution 4, 8, ..., ``image_size``: ``width`` up to ``halve_above`` (None:
    everywhere), then halved at each doubling (at least 4), as the paper's networks thin out towards
    high resolutions, where a layer's cost grows with its pixels: 32 -> [32, 32, 16, 8] for 32x32
    with ``halve_above`` 8."""
    return [width if halve_above is None or 4 * 2 ** r <= halve_above
            else max(4, width // 2 ** (r - int(math.log2(halve_above)) + 2))
            for r in range(num_resolutions(image_size))]


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the feature axis (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class Growing(nn.Module):
    """A module that grows: its ``growth = (phase, alpha)`` are Python numbers that forward() reads
    (so torch.export sees constants), mirrored in buffers so that checkpoints carry them; loading a
    state_dict restores both. A fresh module is fully grown."""

    def _init_growth(self, last_phase: int) -> None:
        self.register_buffer("phase", torch.tensor(last_phase))
        self.register_buffer("alpha", torch.tensor(1.0))
        self.growth = (last_phase, 1.0)
        self.register_load_state_dict_post_hook(Growing._sync_growth)

    def set_growth(self, phase: int, alpha: float) -> None:
        self.phase.fill_(phase)
        self.alpha.fill_(alpha)
        self.growth = (int(phase), float(alpha))

    @staticmethod
    def _sync_growth(module: "Growing", incompatible_keys) -> None:
        module.growth = (int(module.phase), float(module.alpha))


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through ``layers`` fully connected layers with LeakyReLU(0.2).

    ``layers = 0`` is the ablation without a mapping network: w = normalised z (needs w_dim = z_dim).
    ``w_avg`` is the running mean of w during training (the centre of the truncation trick).
    """

    def __init__(self, z_dim: int, w_dim: int, layers: int, equalized_lr: bool = True):
        super().__init__()
        assert layers > 0 or z_dim == w_dim, "without mapping layers w is z itself: w_dim must equal z_dim"
        blocks: list[nn.Module] = []
        for i in range(layers):
            # He's scale at the start (equalised, or He-initialised plain layers): w keeps the scale of
            # the normalised z. (PyTorch's default shrinks it at every layer, so the styles barely
            # vary; docs/stylegan.md.)
            blocks += [linear(z_dim if i == 0 else w_dim, w_dim, equalized_lr, he_init=True), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks)
        self.z_dim, self.w_dim = z_dim, w_dim
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_norm(z))

    @torch.no_grad()
    def track_mean(self, w: torch.Tensor, decay: float = 0.995) -> None:
        self.w_avg.lerp_(w.detach().mean(dim=0).to(self.w_avg.dtype), 1.0 - decay)


class AdaIN(nn.Module):
    """Adaptive instance normalisation: AdaIN(x, w) = (1 + s(w)) * (x - mu(x)) / sigma(x) + b(w),
    mu and sigma per sample and channel over H, W; s and b an affine map of w. Equalised, the map
    starts as the paper's (gain 1, so s and b have about unit spread around 0); plain, it starts at
    0, so a fresh layer is plain instance normalisation."""

    def __init__(self, channels: int, w_dim: int, equalized_lr: bool = True):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False, eps=1e-8)
        self.style = linear(w_dim, 2 * channels, equalized_lr, gain=1.0)
        if not equalized_lr:
            nn.init.zeros_(self.style.weight)
            nn.init.zeros_(self.style.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, bias = self.style(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return (1 + scale) * self.norm(x) + bias


class NoiseInjection(nn.Module):
    """x + scale_c * n, n ~ N(0, 1) per pixel (one map shared by the channels), scale learned per
    channel and starting at 0. ``noise`` may be given (fixed noise for a reproducible image)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.scale * noise


class StyleLayer(nn.Module):
    """[conv 3x3 ->] noise -> LeakyReLU(0.2) -> AdaIN(w): one style layer of the synthesis network."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv: bool = True, equalized_lr: bool = True):
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, 3, equalized_lr) if conv else None
        self.noise = NoiseInjection(out_channels)
        self.adain = AdaIN(out_channels, w_dim, equalized_lr)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        return self.adain(F.leaky_relu(self.noise(x, noise), 0.2), w)


class SynthesisNetwork(nn.Module):
    """Learned constant 4x4 -> two style layers per resolution -> toRGB of the active resolution.

    At 4x4 the first style layer has no convolution (the constant is its input); every higher
    resolution doubles the size (nearest neighbour) and runs two 3x3 convolutions.
    """

    def __init__(self, w_dim: int, channels: int, image_size: int, width: int, equalized_lr: bool = True,
                 halve_width_above: int | None = None):
        super().__init__()
        self.resolutions = num_resolutions(image_size)
        self.num_layers = 2 * self.resolutions
        widths = resolution_widths(image_size, width, halve_width_above)
        self.const = nn.Parameter(torch.randn(1, widths[0], 4, 4))
        self.layers = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for r, w in enumerate(widths):
            self.layers.append(StyleLayer(widths[max(r - 1, 0)], w, w_dim, conv=r > 0, equalized_lr=equalized_lr))
            self.layers.append(StyleLayer(w, w, w_dim, equalized_lr=equalized_lr))
            self.to_rgb.append(conv2d(w, channels, 1, equalized_lr, gain=1.0))  # linear output: gain 1

    def draw_noise(self, n: int, phase: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """The per-pixel noise maps ``forward(..., noise=None)`` would draw for ``n`` images at ``phase``,
        drawn from torch's global generator in the same order: one [n, 1, s, s] per active style layer
        (s = 4 * 2^r for layers 2r and 2r + 1). Drawn up front, they let a large batch be rendered in
        chunks with the images it would have as one batch."""
        return [torch.randn(n, 1, 4 * 2 ** (i // 2), 4 * 2 ** (i // 2), device=device, dtype=self.const.dtype)
                for i in range(2 * (phase + 1))]

    def forward(self, ws: torch.Tensor, phase: int, alpha: float,
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``ws`` [N, num_layers, w_dim] (one w per style layer) -> images [N, C, S, S] in [-1, 1],
        S = 4 * 2^phase. While ``alpha`` < 1 the output is (1 - alpha) * up(toRGB_{phase-1}(h_{phase-1}))
        + alpha * toRGB_phase(h_phase): the new resolution fades in linearly. ``noise``: the per-layer
        noise maps (as :meth:`draw_noise` gives them); None draws fresh ones."""
        assert noise is None or len(noise) >= 2 * (phase + 1), (
            f"noise needs one map per active style layer ({2 * (phase + 1)}); use draw_noise(n, phase)")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        previous = None
        for r in range(phase + 1):
            if r > 0:
                previous = x
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.layers[2 * r](x, ws[:, 2 * r], None if noise is None else noise[2 * r])  # [N, width, s, s]
            x = self.layers[2 * r + 1](x, ws[:, 2 * r + 1], None if noise is None else noise[2 * r + 1])
        rgb = self.to_rgb[phase](x)
        if phase > 0 and alpha < 1:
            skip = F.interpolate(self.to_rgb[phase - 1](previous), scale_factor=2, mode="nearest")
            rgb = torch.lerp(skip, rgb, alpha)
        return torch.tanh(rgb)


# Images x pixels per synthesis pass of :meth:`StyleGenerator.render`: 5,000 images at 16x16 (PPL's
# pairs at the committed size, one pass there as before), 1,250 at 32x32, 312 at 64x64, so that memory
# does not grow with the image size (one pass of 5,000 64x64 images of a 64-channel G would hold ~5 GB
# per activation).
RENDER_PIXELS = 5_000 * 16 * 16


class StyleGenerator(Growing):
    """G(z) = synthesis(mapping(z)), with style mixing and truncation.

    ``forward(z)`` draws at the current ``(phase, alpha)`` (buffers, so checkpoints keep them).
    ``z`` may be [N, z_dim] (one style for every layer) or [N, num_layers, z_dim] (a z per layer,
    which is how style mixing feeds two latents).
    """

    def __init__(self, z_dim: int, w_dim: int, mapping_layers: int, channels: int, image_size: int, width: int,
                 equalized_lr: bool = True, halve_width_above: int | None = None):
        super().__init__()
        self.z_dim = z_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, equalized_lr)
        self.synthesis = SynthesisNetwork(w_dim, channels, image_size, width, equalized_lr, halve_width_above)
        self.num_layers = self.synthesis.num_layers
        self._init_growth(self.synthesis.resolutions - 1)

    def styles(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """Per-layer w [N, num_layers, w_dim], truncated towards ``w_avg`` by ``psi`` (1: none)."""
        if z.dim() == 2:
            w = self.mapping(z).unsqueeze(1).expand(-1, self.num_layers, -1)
        else:
            w = self.mapping(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], z.shape[1], -1)
        if psi != 1.0:
            w = self.mapping.w_avg + psi * (w - self.mapping.w_avg)
        return w

    def forward(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        return self.synthesis(self.styles(z, psi), self.growth[0], self.growth[1])

    @torch.no_grad()
    def render(self, ws: torch.Tensor, noise_seed: int) -> torch.Tensor:
        """Images [N, C, S, S] of the per-layer styles ``ws`` [N, num_layers, w_dim] at the current growth,
        the per-pixel noise drawn from ``noise_seed`` (torch's global random state is left as it was).

        All noise is drawn before rendering, as one forward pass would draw it, and the images are then
        synthesised in chunks of at most ``RENDER_PIXELS`` pixels: the result does not depend on the
        chunking, and a batch at 16x16 of up to 5,000 images is one pass, bit for bit as before.
        """
        phase, alpha = self.growth
        device = ws.device
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if device.type == "cuda" else []):
            torch.manual_seed(noise_seed)
            noise = self.synthesis.draw_noise(ws.shape[0], phase, device)  # one [N, 1, s, s] per style layer
        chunk = max(1, RENDER_PIXELS // (4 * 2 ** phase) ** 2)
        return torch.cat([self.synthesis(ws[i:i + chunk], phase, alpha, [m[i:i + chunk] for m in noise])
                          for i in range(0, ws.shape[0], chunk)])


def mixed_latents(z1: torch.Tensor, z2: torch.Tensor, crossover: torch.Tensor, num_layers: int) -> torch.Tensor:
    """[N, num_layers, z_dim]: z1 for layers < crossover[i], z2 from crossover[i] on (sample i)."""
    layer = torch.arange(num_layers, device=z1.device).unsqueeze(0)  # [1, L]
    use_second = (layer >= crossover.unsqueeze(1)).unsqueeze(-1)  # [N, L, 1]
    return torch.where(use_second, z2.unsqueeze(1), z1.unsqueeze(1))


class StyleDiscriminator(Growing):
    """The progressive D: fromRGB at the active resolution, then conv 3x3 -> conv 3x3 -> 2x average
    pool per resolution down to 4x4, where a minibatch standard-deviation feature, a 3x3 conv and
    a linear layer give one logit. While the new resolution fades in, its input is
    (1 - alpha) * fromRGB_{phase-1}(pool(x)) + alpha * block_phase(fromRGB_phase(x))."""

    def __init__(self, channels: int, image_size: int, width: int, equalized_lr: bool = True,
                 halve_width_above: int | None = None):
        super().__init__()
        eq = equalized_lr
        self.resolutions = num_resolutions(image_size)
        widths = resolution_widths(image_size, width, halve_width_above)
        self.from_rgb = nn.ModuleList(conv2d(channels, w, 1, eq) for w in widths)
        self.blocks = nn.ModuleList(  # block r - 1 takes resolution r (widths[r]) down to r - 1 (widths[r - 1])
            nn.Sequential(conv2d(widths[r], widths[r], 3, eq), nn.LeakyReLU(0.2),
                          conv2d(widths[r], widths[r - 1], 3, eq), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for r in range(1, self.resolutions))
        w = widths[0]
        self.final = nn.Sequential(conv2d(w + 1, w, 3, eq), nn.LeakyReLU(0.2), nn.Flatten(),
                                   linear(w * 16, w, eq), nn.LeakyReLU(0.2),
                                   linear(w, 1, eq, gain=1.0))  # the logit: linear output, gain 1
        self._init_growth(self.resolutions - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase, alpha = self.growth
        h = F.leaky_relu(self.from_rgb[phase](x), 0.2)
        for r in range(phase, 0, -1):
            h = self.blocks[r - 1](h)
            if r == phase and alpha < 1:
                skip = F.leaky_relu(self.from_rgb[r - 1](F.avg_pool2d(x, 2)), 0.2)
                h = torch.lerp(skip, h, alpha)
        return self.final(minibatch_stddev(h)).squeeze(1)


def minibatch_stddev(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the mean standard deviation over groups of samples as one extra feature map
    (Karras et al. 2018): lets D see the variety of a batch."""
    n, c, height, width = h.shape
    g = min(group, n)
    while n % g:
        g -= 1
    y = h.reshape(g, -1, c, height, width)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n / g]
    y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, height, width)
    return torch.cat([h, y], dim=1)
