"""What only a style-based generator has to show: perceptual path length, the truncation trade-off
and what style mixing does (REFERENCE.md; Karras et al. 2019, sections 3.1 and 4).

Every distance is measured in the evaluator's feature space (no downloaded LPIPS network). The
generator's per-pixel noise is drawn from a fixed seed for each pair of images compared, so a
distance measures the change of z or w alone. The style-based family calls these through its hooks
(``extra_eval_metrics``, ``style_mixing_grid``); ``G`` here is its style-based generator.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.evaluator import predict_labels
from pipeline.families.base import Family
from pipeline.metrics import feature_stats, frechet_distance
from pipeline.metrics.features import Evaluator
from pipeline.metrics.prdc import prdc

COARSE_RESOLUTIONS = 2  # 4x4 and 8x8: the "coarse" styles (pose, shape; for digits: which digit)
# Pairs per perceptual-path-length estimate. PPL has no real-data floor, so it need not use the
# FID's N (the test split). The per-pair distances are heavy-tailed, so an estimate needs thousands
# of pairs to be stable (the spreads over evaluation seeds: the StyleGAN notes in docs/); the paper uses 100,000.
PPL_PAIRS = 5_000


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b [N, d] at t [N, 1] (as in StyleGAN's PPL in Z)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(dim=1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - t) * omega) * a_n + torch.sin(t * omega) * b_n) / torch.sin(omega)


def _render(G, ws: torch.Tensor, noise_seed: int) -> np.ndarray:
    """Images of the per-layer styles ``ws`` with the per-pixel noise drawn from ``noise_seed``
    (the global random state is left as it was), rendered in chunks whose memory does not grow
    with the image size (the generator's ``render``)."""
    return G.render(ws, noise_seed).numpy()


@torch.no_grad()
def path_images(G, n: int, seed: int, space: str = "z", eps: float = 1e-4,
                with_ends: bool = False) -> tuple[np.ndarray, ...]:
    """The images perceptual path length compares, for n random paths p from z1 to z2: G(p(t)) and
    G(p(t + eps)), t uniform in [0, 1]; with ``with_ends`` also G(p(0)) and G(p(1)), the paths' two
    ends (to split PPL by their classes). ``space`` "z": p = slerp between the two z; "w": p = lerp
    between their w = f(z) (a generator without mapping layers has w = normalised z)."""
    generator = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, G.z_dim, generator=generator), torch.randn(n, G.z_dim, generator=generator)
    t = torch.rand(n, 1, generator=generator)
    if space == "z":
        w_a, w_b = G.mapping(slerp(z1, z2, t)), G.mapping(slerp(z1, z2, t + eps))
    else:
        w1, w2 = G.mapping(z1), G.mapping(z2)
        w_a, w_b = torch.lerp(w1, w2, t), torch.lerp(w1, w2, t + eps)
    points = [w_a, w_b] + ([G.mapping(z1), G.mapping(z2)] if with_ends else [])
    return tuple(_render(G, w.unsqueeze(1).expand(-1, G.num_layers, -1), seed) for w in points)


def trimmed_mean(values: np.ndarray) -> float:
    """The mean of the values between their 1st and 99th percentiles (StyleGAN's PPL protocol)."""
    low, high = np.percentile(values, [1, 99])
    return float(values[(values >= low) & (values <= high)].mean())


def perceptual_path_length(G, evaluator: Evaluator, n: int, seed: int, space: str = "z", eps: float = 1e-4) -> float:
    """PPL = E[ d(G(p(t)), G(p(t + eps))) / eps^2 ], d the squared distance of the evaluator's
    features, keeping the 1st-99th percentile of the n values (paths p as in ``path_images``)."""
    a, b = path_images(G, n, seed, space, eps)
    return trimmed_mean(((evaluator.features(a) - evaluator.features(b)) ** 2).sum(axis=1) / eps ** 2)


@torch.no_grad()
def truncation_sweep(family: Family, G, evaluator: Evaluator, n: int, seed: int,
                     psis: tuple[float, ...] = (1.0, 0.9, 0.7, 0.5)) -> list[dict]:
    """For each psi: FID to the real train split, recall (k = 3) and diversity (the mean feature
    distance between two independent samples): truncation trades variety for typicality."""
    rows = []
    for psi in psis:
        generator = torch.Generator().manual_seed(seed)
        images = family.sample({"G_ema": G}, n, generator, psi=psi).numpy()
        features = evaluator.features(images)
        half = n // 2
        rows.append({"psi": psi, "fid": frechet_distance(*feature_stats(features), evaluator.train_mu, evaluator.train_cov),
                     "recall": prdc(evaluator.train_features, features)["recall"],
                     "diversity": float(np.linalg.norm(features[:half] - features[half:2 * half], axis=1).mean())})
    return rows


def coarse_layers(G) -> int:
    """Style layers of the coarse resolutions (two per resolution)."""
    return 2 * min(COARSE_RESOLUTIONS, G.synthesis.resolutions)


@torch.no_grad()
def mix_styles(G, z_coarse: torch.Tensor, z_fine: torch.Tensor, noise_seed: int) -> np.ndarray:
    """Images taking the coarse styles (4x4-8x8 layers) from ``z_coarse`` and the rest from ``z_fine``."""
    w_coarse, w_fine = G.mapping(z_coarse), G.mapping(z_fine)
    layer = torch.arange(G.num_layers).view(1, -1, 1)
    ws = torch.where(layer < coarse_layers(G), w_coarse.unsqueeze(1), w_fine.unsqueeze(1))
    return _render(G, ws, noise_seed)


@torch.no_grad()
def mixing_grid(G, n: int, seed: int) -> np.ndarray:
    """[(n + 1)^2, C, H, W] images for an (n + 1) x (n + 1) grid: the first row holds the fine-style
    sources, the first column the coarse-style sources, cell (i, j) coarse from row i's source and
    fine from column j's (the top-left cell is blank)."""
    generator = torch.Generator().manual_seed(seed)
    z_coarse, z_fine = torch.randn(n, G.z_dim, generator=generator), torch.randn(n, G.z_dim, generator=generator)
    plain = lambda z: mix_styles(G, z, z, seed)  # noqa: E731  (a source image: one z everywhere)
    coarse_src, fine_src = plain(z_coarse), plain(z_fine)
    blank = -np.ones_like(coarse_src[:1])
    rows = [np.concatenate([blank, fine_src])]
    for i in range(n):
        rows.append(np.concatenate([coarse_src[i:i + 1],
                                    mix_styles(G, z_coarse[i:i + 1].expand(n, -1), z_fine, seed)]))
    return np.concatenate(rows)


@torch.no_grad()
def class_following(G, evaluator: Evaluator, n: int, seed: int) -> dict:
    """How often the evaluator's class of a mixed image is that of its coarse-style source, and
    how often that of its fine-style source, over the pairs whose two sources differ in class."""
    generator = torch.Generator().manual_seed(seed)
    z_coarse, z_fine = torch.randn(n, G.z_dim, generator=generator), torch.randn(n, G.z_dim, generator=generator)
    classify = lambda images: predict_labels(evaluator.model, images)  # noqa: E731
    mixed = classify(mix_styles(G, z_coarse, z_fine, seed))
    coarse, fine = classify(mix_styles(G, z_coarse, z_coarse, seed)), classify(mix_styles(G, z_fine, z_fine, seed))
    differ = coarse != fine
    if not differ.any():  # a collapsed generator: every source has the same class, nothing to measure
        return {"mix_follows_coarse": None, "mix_follows_fine": None, "mix_pairs": 0}
    return {"mix_follows_coarse": float((mixed[differ] == coarse[differ]).mean()),
            "mix_follows_fine": float((mixed[differ] == fine[differ]).mean()),
            "mix_pairs": int(differ.sum())}


def style_metrics(family: Family, nets: dict, evaluator: Evaluator, n: int, seed: int,
                  ppl_pairs: int = PPL_PAIRS) -> dict:
    """PPL in Z and W (``ppl_pairs`` pairs each), the truncation sweep and the class-following rates
    of style mixing (``n`` samples, the FID's N)."""
    G = nets[family.sampling_net_name].eval()
    evaluator.model.eval()
    metrics = {"ppl_z": perceptual_path_length(G, evaluator, ppl_pairs, seed, "z"),
               "ppl_w": perceptual_path_length(G, evaluator, ppl_pairs, seed, "w"),
               "ppl_pairs": ppl_pairs,
               **class_following(G, evaluator, n, seed)}
    for row in truncation_sweep(family, G, evaluator, n, seed):
        for key in ("fid", "recall", "diversity"):
            metrics[f"truncation/{row['psi']}/{key}"] = row[key]
    return metrics
