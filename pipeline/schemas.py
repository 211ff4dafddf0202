"""The params schemas: one pydantic model per family, the tuning spec, and their registries (the
dataset schemas are in :mod:`pipeline.dataset_schemas`, re-exported here).

Every key is declared (``extra="forbid"``), so a typo is an error, not a silent default. Only
:mod:`pipeline.config` reads ``params.yaml``; it validates each entry against these models and adds
the checks that need several entries at once (a variant's dataset, sizes the architecture can make).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from pipeline.schema_base import SEED_MAX, ConfigError, Strict, seed_field  # noqa: F401  (re-exported)
from pipeline.dataset_schemas import (  # noqa: F401  (re-exported: the dataset schemas and their registry)
    DATASET_SCHEMAS, POINT_DATASETS, UNPAIRED_DATASETS, AnyDatasetConfig, Cifar10Config, DatasetConfig,
    DigitsToTypedConfig, FileSpec, IdxConfig, ImageFolderConfig, ImageFoldersConfig, MixtureDatasetConfig,
    MnistConfig, StackedDigitsConfig, StorageOptions, TypedDigitsConfig)


class EvaluatorConfig(Strict):
    """The per-dataset classifier whose feature space FID/KID are measured in."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    feature_dim: int = Field(64, ge=2, description="width of the penultimate (feature) layer")
    seed: int = seed_field(0)


class EvalConfig(Strict):
    """How a trained variant is evaluated (REFERENCE.md: KID subsets, equal-N floor)."""

    n_samples: int | None = Field(None, ge=10, description="None: the size of the test split")
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    seed: int = seed_field(12345)


class DivergenceRule(Strict):
    """When a run counts as diverged besides a non-finite value (which always stops it): D has won
    outright, D(x) near 1 and D(G(z)) near 0, for ``saturated_epochs`` epochs in a row, so G gets no
    useful gradient (families that report D/real and D/fake: gan, dcgan, stylegan). docs/reliability.md."""

    saturated_epochs: int = Field(ge=1, description="stop after this many consecutive saturated epochs")
    margin: float = Field(0.01, gt=0.0, lt=0.5, description="saturated: mean D/real > 1 - margin and "
                          "mean D/fake < margin over the epoch")


class TrainingConfig(Strict):
    """Keys every family shares: data, budget, seeds and how Ray places the workers.

    Per-family facts the params checks need are class attributes a family's config overrides (not
    fields): ``min_image_size`` (smallest image side its architecture makes), ``images_only`` (it
    cannot model 2-D points), ``translates`` (it translates between two unpaired domains and needs
    such a dataset), ``tuning_refusal`` (why it cannot be tuned yet; None: it can),
    ``saved_before`` (the values that fields added later had in effect, for configs saved before
    them: a model folder's config.json lacks them) and :meth:`dataset_problems` (its own checks
    against its dataset).
    """

    saved_before: ClassVar[dict[str, Any]] = {}
    min_image_size: ClassVar[int] = 1
    images_only: ClassVar[bool] = False
    translates: ClassVar[bool] = False
    tuning_refusal: ClassVar[str | None] = None

    family: str
    dataset: str
    seed: int = seed_field(0)
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] | None = Field(
        None, min_length=1, description="train once per seed (replaces seed); metrics become mean and spread")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2, description="global batch, split evenly across workers")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel replicas)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs Ray reserves per worker = torch threads")
    use_gpu: bool = Field(False, description="one GPU per worker, nccl between them (a CUDA machine or cluster)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: forward passes under bf16 autocast (AMP); needs use_gpu: true")
    channels_last: bool = Field(
        True, description="conv weights in channels-last (NHWC) layout: about 1.25x the samples/s of the "
        "default layout on CPU (docs/benchmarks.md); no effect on MLPs")
    max_failures: int = Field(1, ge=0, description="worker failures Ray Train recovers from")
    divergence: DivergenceRule | None = Field(
        None, description="a divergence rule that stops the run (None: only NaN/inf stops it)")
    eval: EvalConfig = EvalConfig()

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    def run_seeds(self) -> list[int]:
        """The seeds this variant trains with: ``seeds`` if given, else ``[seed]``."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    def for_seed(self, seed: int) -> "TrainingConfig":
        """The config of one training run: ``seed`` set, ``seeds`` cleared."""
        return self.model_copy(update={"seed": seed, "seeds": None})

    def dataset_problems(self, where: str, dataset: Any) -> list[str]:
        """The family's own checks of this variant, given its (image) ``dataset``: one line per
        problem; ``where`` is the variant's key path in params.yaml."""
        return []


AugmentName = Literal["translation", "cutout"]


class DcganConfig(TrainingConfig):
    """DCGAN (Radford et al. 2016) with the 2014 GAN losses, or the hinge loss, or the Wasserstein
    loss without clipping or penalty (``wgan``: for experiments only; see ``pipeline.losses``)."""

    min_image_size: ClassVar[int] = 8  # G grows from 4x4 by doubling
    images_only: ClassVar[bool] = True
    family: Literal["dcgan"]
    z_dim: int = Field(64, ge=1)
    g_width: int = Field(64, ge=4, description="channels of G's last hidden layer (ngf)")
    d_width: int = Field(64, ge=4, description="channels of D's first layer (ndf)")
    d_norm: Literal["batch", "spectral"] = Field("batch", description="D's normalisation: BatchNorm "
                                                 "(DCGAN) or spectral norm on every conv (SN-GAN)")
    loss: Literal["nonsaturating", "minimax", "hinge", "wgan"] = "nonsaturating"
    lr_g: float = Field(2e-4, gt=0.0)
    lr_d: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    augment: list[AugmentName] = Field(default_factory=list, description="DiffAugment policies")
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0, description="0 disables the EMA generator")
    pack: int = Field(1, ge=1, le=16, description="PacGAN: D judges this many samples at once")
    conditional: bool = Field(False, description="cGAN: condition G and D on the class label")


class GanConfig(TrainingConfig):
    """The original GAN (Goodfellow et al. 2014): MLP G and D, on 2-D points or flattened images."""

    family: Literal["gan"]
    z_dim: int = Field(2, ge=1)
    g_hidden: int = Field(400, ge=1)
    g_layers: int = Field(4, ge=1)
    d_hidden: int = Field(200, ge=1)
    d_layers: int = Field(3, ge=1)
    loss: Literal["nonsaturating", "minimax"] = "nonsaturating"
    lr_g: float = Field(1e-4, gt=0.0)
    lr_d: float = Field(1e-4, gt=0.0)
    beta1: float = Field(0.8, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0, description="0 disables the EMA generator")
    compare_losses: bool = Field(True, description="also log G's gradient norm under both generator losses")
    pack: int = Field(1, ge=1, le=16, description="PacGAN: D judges this many samples at once")
    conditional: bool = Field(False, description="cGAN: condition G and D on the class label")


class VaeConfig(TrainingConfig):
    """The VAE baseline: DCGAN-sized conv encoder and decoder trained on the ELBO."""

    min_image_size: ClassVar[int] = 8
    images_only: ClassVar[bool] = True
    family: Literal["vae"]
    z_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=4, description="channels of the encoder's first / decoder's last layer")
    lr: float = Field(1e-3, gt=0.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    recon_std: float = Field(0.2, gt=0.0, description="std of the Gaussian decoder p(x|z) on pixels in [-1, 1]")


class CycleganConfig(TrainingConfig):
    """CycleGAN (Zhu et al. 2017) on two unpaired image domains; defaults follow the reference recipe
    (REFERENCE.md) with the networks scaled down for small images."""

    min_image_size: ClassVar[int] = 8
    images_only: ClassVar[bool] = True
    translates: ClassVar[bool] = True
    family: Literal["cyclegan"]
    g_width: int = Field(32, ge=4, description="channels of the generators' first layer (ngf)")
    g_blocks: int = Field(3, ge=1, description="ResNet blocks at the generators' bottleneck (paper: 6 or 9)")
    g_downsample: int = Field(2, ge=0, le=4, description="stride-2 convolutions before the ResNet blocks (paper: 2)")
    d_width: int = Field(64, ge=4, description="channels of the PatchGAN discriminators' first layer (ndf)")
    d_layers: int = Field(2, ge=1, le=5, description="stride-2 convolutions of the PatchGAN (paper: 3, 70x70)")
    d_norm: Literal["instance", "none"] = Field("instance", description="normalisation inside the PatchGAN")
    augment: list[AugmentName] = Field(default_factory=list, description="DiffAugment of what D sees; [] disables")
    lambda_cycle: float = Field(10.0, ge=0.0, description="weight of the cycle-consistency L1 (0 disables it)")
    lambda_identity: float = Field(0.5, ge=0.0, description="identity loss weight, in units of lambda_cycle")
    pool_size: int = Field(50, ge=0, description="history of generated images D is shown (0: none)")
    lr: float = Field(2e-4, gt=0.0)
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    decay_epochs: int | None = Field(None, ge=0, description="last epochs with linearly decaying lr (None: half)")

    def decay(self) -> int:
        """Epochs of linear lr decay at the end of training (the rest keep lr constant)."""
        return self.epochs // 2 if self.decay_epochs is None else self.decay_epochs

    def dataset_problems(self, where: str, dataset: Any) -> list[str]:
        """The decay fits the epochs; the generators' bottleneck and the PatchGAN fit the image size."""
        problems, size = [], dataset.image_size
        if self.decay() > self.epochs:
            problems.append(f"{where}.decay_epochs = {self.decay_epochs}: at most epochs ({self.epochs})")
        if size // 2 ** self.g_downsample < 2:
            problems.append(f"{where}.g_downsample = {self.g_downsample}: too many for {size}x{size} images (the "
                            f"bottleneck must stay at least 2x2); allowed: 0 .. {size.bit_length() - 2}")
        if size // 2 ** self.d_layers < 3:
            problems.append(f"{where}.d_layers = {self.d_layers}: too deep for {size}x{size} images; allowed: 1 .. "
                            f"{max(1, (size // 3).bit_length() - 1)}")
        return problems


class StyleganConfig(TrainingConfig):
    """StyleGAN (Karras et al. 2019) at small scale, trained progressively from 4x4; the growth
    schedule counts training images (epochs x train size), so it does not depend on workers."""

    min_image_size: ClassVar[int] = 8
    images_only: ClassVar[bool] = True
    # Its samples have the dataset's size only once fully grown.
    tuning_refusal: ClassVar[str | None] = ("a trial's objective needs full-size samples, which exist only after "
                                            "the growth schedule")
    saved_before: ClassVar[dict[str, Any]] = {"equalized_lr": False}  # models saved before 2026-12-07 had plain layers
    family: Literal["stylegan"]
    z_dim: int = Field(64, ge=1)
    w_dim: int = Field(64, ge=1, description="style vector size (with mapping_layers: 0 it must equal z_dim)")
    mapping_layers: int = Field(4, ge=0, le=8, description="MLP layers z -> w (paper: 8); 0: w = normalised z")
    mapping_lr_mult: float = Field(0.01, gt=0.0, le=1.0, description="the mapping network's lr as a share of lr_g")
    g_width: int = Field(64, ge=4, description="channels of the synthesis layers (up to halve_width_above)")
    d_width: int = Field(64, ge=4, description="channels of the discriminator layers (up to halve_width_above)")
    halve_width_above: int | None = Field(None, ge=4, description="image size above which each doubling of "
                                          "the resolution halves G's and D's channels (paper-like; null: the "
                                          "widths everywhere)")
    equalized_lr: bool = Field(True, description="weights N(0, 1) scaled at run time by He's constant, in G and "
                               "D (paper); false: plain PyTorch layers, with which D sits at chance")
    lr_g: float = Field(1e-3, gt=0.0)
    lr_d: float = Field(1e-3, gt=0.0)
    beta1: float = Field(0.0, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    r1_gamma: float = Field(1.0, ge=0.0, description="weight of the R1 penalty on real images (0 disables it)")
    r1_every: int = Field(1, ge=1, description="R1 on every k-th step only, weighted k times (StyleGAN2's lazy "
                          "regularisation; it costs a second backward pass through D)")
    mixing_prob: float = Field(0.9, ge=0.0, le=1.0, description="share of samples trained with two latents")
    phase_images: int = Field(60_000, ge=1, description="images shown at each resolution at full strength")
    fade_images: int = Field(60_000, ge=1, description="images over which a new resolution fades in")
    truncation_psi: float = Field(1.0, ge=0.0, le=1.0, description="psi when sampling (1: no truncation)")
    augment: list[AugmentName] = Field(default_factory=list, description="DiffAugment policies")
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0, description="0 disables the EMA generator")

    def dataset_problems(self, where: str, dataset: Any) -> list[str]:
        if self.mapping_layers == 0 and self.w_dim != self.z_dim:
            return [f"{where}.w_dim = {self.w_dim}: with mapping_layers: 0 the style is z itself; "
                    f"set w_dim to z_dim ({self.z_dim})"]
        return []


class WganGpConfig(TrainingConfig):
    """WGAN-GP (Gulrajani et al. 2017): the DCGAN generator and a critic without BatchNorm, trained on
    the Wasserstein loss with a gradient penalty; ``n_critic`` critic updates per generator update."""

    min_image_size: ClassVar[int] = 8
    images_only: ClassVar[bool] = True

    family: Literal["wgan_gp"]
    z_dim: int = Field(64, ge=1)
    g_width: int = Field(64, ge=4, description="channels of G's last hidden layer (ngf)")
    d_width: int = Field(64, ge=4, description="channels of the critic's first layer")
    critic_norm: Literal["layer", "none"] = Field("layer", description="normalisation inside the critic "
                                                  "(never BatchNorm: the penalty is per sample)")
    gp_lambda: float = Field(10.0, ge=0.0, description="weight of the gradient penalty (paper: 10)")
    n_critic: int = Field(5, ge=1, description="critic updates per generator update (paper: 5)")
    lr_g: float = Field(1e-4, gt=0.0)
    lr_d: float = Field(1e-4, gt=0.0)
    beta1: float = Field(0.0, ge=0.0, lt=1.0)
    beta2: float = Field(0.9, ge=0.0, lt=1.0)
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0, description="EMA generator for sampling (0: G itself, as in "
                             "the paper)")

    def dataset_problems(self, where: str, dataset: Any) -> list[str]:
        per_worker = self.batch_size // self.num_workers
        if self.n_critic > per_worker:
            return [f"{where}.n_critic = {self.n_critic}: each critic update takes batch_size / num_workers / "
                    f"n_critic real images; allowed: 1 .. {per_worker}"]
        return []


class TuneSpec(Strict):
    """A hyperparameter search of one variant (``tune.<variant>``); keys not in ``space`` keep the
    variant's values. Budgets are in epochs of the variant's dataset."""

    scheduler: Literal["asha", "pbt", "fifo"] = Field(
        "asha", description="asha: early stopping; pbt: exploit/explore; fifo: every trial to max_epochs")
    num_samples: int = Field(8, ge=1, description="trials (configs drawn from space)")
    max_epochs: int = Field(ge=1, description="epochs of a trial that is never stopped early")
    grace_epochs: int = Field(2, ge=1, description="asha: epochs before a trial can be stopped")
    reduction_factor: int = Field(3, ge=2, description="asha: 1/reduction_factor of the trials go on at each rung")
    perturbation_epochs: int = Field(4, ge=1, description="pbt: epochs between exploit/explore steps")
    quantile_fraction: float = Field(0.25, gt=0.0, le=0.5, description="pbt: bottom share cloned from the top share")
    resample_probability: float = Field(0.25, ge=0.0, le=1.0, description="pbt: explore by resampling, not x1.2/x0.8")
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (None: as many as the CPUs allow)")
    num_workers: int = Field(1, ge=1, description="asha: Ray Train workers of each trial (pbt trials: one process)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs (torch threads) per trial worker")
    include_default: bool = Field(True, description="the first trial runs the variant's own values (the default)")
    n_samples: int = Field(500, ge=10, description="generated samples the objective is measured on at each report")
    seed: int = seed_field(0, description="seeds the search: the same seed draws the same configs")
    space: dict[str, str] = Field(min_length=1, description="key -> loguniform(a, b) | uniform(a, b) | "
                                                            "randint(a, b) | choice(v1, v2, ...)")


# Explicit registry: family name -> its params schema. Adding a family adds one line here.
VARIANT_SCHEMAS: dict[str, type[TrainingConfig]] = {
    "dcgan": DcganConfig, "gan": GanConfig, "vae": VaeConfig, "cyclegan": CycleganConfig,
    "stylegan": StyleganConfig, "wgan_gp": WganGpConfig}
