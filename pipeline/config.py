"""Typed, validated params: the one place that reads ``params.yaml``.

Every key is declared here (pydantic, ``extra="forbid"``), so a typo is an error, not a silent
default. :func:`load_params` collects *all* problems and raises :class:`ConfigError` with one line
per problem naming the key path, the bad value and what is allowed; stages turn that into exit
code 2 before Ray starts or any output is touched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """Invalid params; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError("must be a power of two (8, 16, 32 or 64)")
    return value


class DatasetConfig(Strict):
    """An image dataset that ``prepare@<name>`` turns into ``data/prepared/<name>.npz``."""

    kind: Literal["digits"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, description="seed of the stratified train/test split")

    _pow2 = field_validator("image_size")(_power_of_two)


class MixtureDatasetConfig(Strict):
    """A 2-D Gaussian mixture of the mode-collapse benchmarks (REFERENCE.md)."""

    kind: Literal["ring8", "grid25"]
    n_train: int = Field(100_000, ge=100, description="training points (PacGAN: 100,000)")
    n_test: int = Field(2_500, ge=100, description="held-out points (the real-vs-real floor)")
    seed: int = Field(0, ge=0)


class StackedDigitsConfig(DatasetConfig):
    """Three independent digits as the three channels of one image: 1,000 modes (Stacked MNIST)."""

    kind: Literal["stacked_digits"]
    n_train: int = Field(25_000, ge=100, description="stacked training samples (from the digits train split)")
    n_test: int = Field(26_000, ge=100, description="stacked test samples; the protocol evaluates 26,000")


class TypedDigitsConfig(Strict):
    """Digits 0-9 typeset with the fonts installed packages ship, jittered (pipeline.data.typed)."""

    kind: Literal["typed_digits"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    n_train: int = Field(1500, ge=10)
    n_test: int = Field(360, ge=10)
    seed: int = Field(0, ge=0)
    system_fonts: bool = Field(False, description="also use the .ttf fonts under /usr/share/fonts")

    _pow2 = field_validator("image_size")(_power_of_two)


class DigitsToTypedConfig(Strict):
    """CycleGAN's unpaired domains: A = handwritten ``digits`` (split as that dataset is), B = typed
    digits (drawn independently). Labels are stored for evaluation only."""

    kind: Literal["digits_to_typed"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="held-out share of domain A")
    typed_train: int = Field(1500, ge=10, description="typed digits in B's train split")
    typed_test: int = Field(360, ge=10, description="typed digits in B's test split")
    seed: int = Field(0, ge=0)
    system_fonts: bool = Field(False, description="also use the .ttf fonts under /usr/share/fonts")

    _pow2 = field_validator("image_size")(_power_of_two)


class ImageFoldersConfig(Strict):
    """The user's unpaired images: ``path`` holds trainA/, trainB/ (and optionally testA/, testB/)."""

    kind: Literal["image_folders"]
    path: str = Field(description="folder with trainA/ and trainB/; keep it under data/raw/ so DVC tracks it")
    channels: Literal[1, 3] = Field(3, description="1: grey, 3: RGB")
    image_size: int = Field(32, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held out when there is no testA/testB")
    seed: int = Field(0, ge=0)

    _pow2 = field_validator("image_size")(_power_of_two)


# Explicit registry: dataset kind -> its params schema.
DATASET_SCHEMAS: dict[str, type[Strict]] = {
    "digits": DatasetConfig, "stacked_digits": StackedDigitsConfig, "typed_digits": TypedDigitsConfig,
    "ring8": MixtureDatasetConfig, "grid25": MixtureDatasetConfig,
    "digits_to_typed": DigitsToTypedConfig, "image_folders": ImageFoldersConfig,
}
POINT_DATASETS = ("ring8", "grid25")
UNPAIRED_DATASETS = (DigitsToTypedConfig, ImageFoldersConfig)  # two domains, for translation families
AnyDatasetConfig = (DatasetConfig | TypedDigitsConfig | MixtureDatasetConfig | DigitsToTypedConfig
                    | ImageFoldersConfig)


class EvaluatorConfig(Strict):
    """The per-dataset classifier whose feature space FID/KID are measured in."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    feature_dim: int = Field(64, ge=2, description="width of the penultimate (feature) layer")
    seed: int = Field(0, ge=0)


class EvalConfig(Strict):
    """How a trained variant is evaluated (REFERENCE.md: KID subsets, equal-N floor)."""

    n_samples: int | None = Field(None, ge=10, description="None: the size of the test split")
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    seed: int = Field(12345, ge=0)


class TrainingConfig(Strict):
    """Keys every family shares: data, budget, seeds and how Ray places the workers."""

    family: str
    dataset: str
    seed: int = Field(0, ge=0)
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="train once per seed (replaces seed); metrics become mean and spread")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2, description="global batch, split evenly across workers")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel replicas)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs Ray reserves per worker = torch threads")
    use_gpu: bool = False
    max_failures: int = Field(1, ge=0, description="worker failures Ray Train recovers from")
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


AugmentName = Literal["translation", "cutout"]


class DcganConfig(TrainingConfig):
    """DCGAN (Radford et al. 2016) with the 2014 GAN generator losses."""

    family: Literal["dcgan"]
    z_dim: int = Field(64, ge=1)
    g_width: int = Field(64, ge=4, description="channels of G's last hidden layer (ngf)")
    d_width: int = Field(64, ge=4, description="channels of D's first layer (ndf)")
    loss: Literal["nonsaturating", "minimax"] = "nonsaturating"
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


# Explicit registry: family name -> its params schema. Adding a family adds one line here.
VARIANT_SCHEMAS: dict[str, type[TrainingConfig]] = {
    "dcgan": DcganConfig, "gan": GanConfig, "vae": VaeConfig, "cyclegan": CycleganConfig}

# Smallest image side each family's architecture can produce (DCGAN grows from 4x4 by doubling).
MIN_IMAGE_SIZE: dict[str, int] = {"dcgan": 8, "gan": 1, "vae": 8, "cyclegan": 8}
# Families that can only model images (not 2-D points).
IMAGE_ONLY_FAMILIES = ("dcgan", "vae", "cyclegan")
# Families that translate between two unpaired domains (and need an unpaired dataset).
TRANSLATION_FAMILIES = ("cyclegan",)


@dataclass(frozen=True)
class Params:
    """All validated params. ``variants`` values are family-specific ``TrainingConfig`` subclasses."""

    datasets: dict[str, AnyDatasetConfig]
    evaluators: dict[str, EvaluatorConfig]
    variants: dict[str, TrainingConfig]

    def variant(self, name: str) -> TrainingConfig:
        if name not in self.variants:
            raise ConfigError([f"variant {name!r} is not in params.yaml variants; "
                               f"allowed: {', '.join(sorted(self.variants))}"])
        return self.variants[name]


class _TopLevel(Strict):
    """Top-level shape only; each entry is validated on its own so that every problem is listed."""

    datasets: dict[str, Any]
    evaluators: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, Any]


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model that owns ``loc`` (for 'unknown key' messages)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:  # a dict key (dataset or variant name): the value type follows
            continue
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return []
        model = candidates[0]
    return sorted(model.model_fields)


def _format_errors(err: ValidationError, model: type[BaseModel], prefix: tuple = ()) -> list[str]:
    lines = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        path = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, tuple(e["loc"])))
            lines.append(f"params.yaml: {path}: unknown key; allowed: {allowed}")
        elif e["type"] == "missing":
            lines.append(f"params.yaml: {path}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"params.yaml: {path} = {e['input']!r}: {msg}")
    return lines


def _validate_variant(name: str, raw: Any, datasets: dict[str, Any],
                      declared: set[str]) -> tuple[Any, list[str]]:
    where = f"params.yaml: variants.{name}"
    if not isinstance(raw, dict):
        return None, [f"{where} = {raw!r}: must be a mapping of keys to values"]
    family = raw.get("family")
    if family not in VARIANT_SCHEMAS:
        return None, [f"{where}.family = {family!r}: unknown family; allowed: {', '.join(VARIANT_SCHEMAS)}"]
    schema = VARIANT_SCHEMAS[family]
    try:
        cfg = schema.model_validate(raw)
    except ValidationError as err:
        return None, _format_errors(err, schema, ("variants", name))
    problems = []
    if cfg.seeds is not None and "seed" in raw:
        problems.append(f"{where}.seed = {cfg.seed!r}: give either seed or seeds, not both")
    if cfg.dataset not in declared:
        problems.append(f"{where}.dataset = {cfg.dataset!r}: unknown dataset; "
                        f"allowed: {', '.join(sorted(declared)) or '(none declared under datasets)'}")
    elif cfg.dataset in datasets:  # (an invalid dataset entry was already reported)
        dataset = datasets[cfg.dataset]
        if isinstance(dataset, MixtureDatasetConfig):
            if family in IMAGE_ONLY_FAMILIES:
                problems.append(f"{where}.dataset = {cfg.dataset!r}: family {family!r} needs an image "
                                f"dataset, {cfg.dataset!r} is 2-D points")
        elif dataset.image_size < MIN_IMAGE_SIZE[family]:
            size = dataset.image_size
            problems.append(f"params.yaml: datasets.{cfg.dataset}.image_size = {size}: family {family!r} "
                            f"(variant {name}) needs at least {MIN_IMAGE_SIZE[family]}")
        else:
            problems += _domain_problems(where, cfg, dataset)
    if cfg.batch_size % cfg.num_workers or cfg.batch_size // cfg.num_workers < 2:
        problems.append(f"{where}.batch_size = {cfg.batch_size}: must be a multiple of num_workers "
                        f"({cfg.num_workers}) with at least 2 images per worker (BatchNorm)")
    elif isinstance(cfg, (DcganConfig, GanConfig)) and cfg.conditional and cfg.pack > 1:
        problems.append(f"{where}.pack = {cfg.pack}: packing is not supported with conditional: true; use pack: 1")
    elif isinstance(cfg, (DcganConfig, GanConfig)) and (cfg.batch_size // cfg.num_workers) % cfg.pack:
        problems.append(f"{where}.pack = {cfg.pack}: must divide the per-worker batch "
                        f"(batch_size / num_workers = {cfg.batch_size // cfg.num_workers})")
    return cfg, problems


def _domain_problems(where: str, cfg: TrainingConfig, dataset: Strict) -> list[str]:
    """Translation families need two unpaired domains, the others one; CycleGAN's sizes must fit."""
    unpaired = isinstance(dataset, UNPAIRED_DATASETS)
    if cfg.family in TRANSLATION_FAMILIES and not unpaired:
        return [f"{where}.dataset = {cfg.dataset!r}: family {cfg.family!r} translates between two domains; "
                f"use a dataset of kind digits_to_typed or image_folders"]
    if cfg.family not in TRANSLATION_FAMILIES and unpaired:
        return [f"{where}.dataset = {cfg.dataset!r}: a two-domain dataset is for family cyclegan; "
                f"family {cfg.family!r} needs a single-domain dataset"]
    problems = []
    if isinstance(cfg, CycleganConfig):
        if cfg.decay() > cfg.epochs:
            problems.append(f"{where}.decay_epochs = {cfg.decay_epochs}: at most epochs ({cfg.epochs})")
        if dataset.image_size // 2 ** cfg.g_downsample < 2:
            problems.append(f"{where}.g_downsample = {cfg.g_downsample}: too many for {dataset.image_size}x"
                            f"{dataset.image_size} images (the bottleneck must stay at least 2x2); allowed: 0 .. "
                            f"{dataset.image_size.bit_length() - 2}")
        if dataset.image_size // 2 ** cfg.d_layers < 3:
            problems.append(f"{where}.d_layers = {cfg.d_layers}: too deep for {dataset.image_size}x"
                            f"{dataset.image_size} images; allowed: 1 .. "
                            f"{max(1, (dataset.image_size // 3).bit_length() - 1)}")
    return problems


def parse_params(raw: Any) -> Params:
    """Validate an already-loaded params mapping; raises :class:`ConfigError` listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([f"params.yaml: top level = {raw!r}: must be a mapping with datasets and variants"])
    try:
        top = _TopLevel.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, _TopLevel)) from None
    problems: list[str] = []
    datasets = _validate_datasets(top.datasets, problems)
    evaluators = _validate_section("evaluators", top.evaluators, EvaluatorConfig, problems)
    problems += [f"params.yaml: evaluators.{name}: no dataset of that name; allowed: {', '.join(top.datasets)}"
                 for name in evaluators if name not in top.datasets]
    problems += [f"params.yaml: variants.{name}.dataset = {raw['dataset']!r}: evaluate needs an evaluator; "
                 f"add `{raw['dataset']}: {{}}` under evaluators"
                 for name, raw in top.variants.items()
                 if isinstance(raw, dict) and raw.get("dataset") in top.datasets and raw["dataset"] not in top.evaluators]
    variants = {}
    for name, raw_variant in top.variants.items():
        cfg, variant_problems = _validate_variant(name, raw_variant, datasets, set(top.datasets))
        problems += variant_problems
        variants[name] = cfg
    if problems:
        raise ConfigError(problems)
    return Params(datasets=datasets, evaluators=evaluators, variants=variants)


def _validate_datasets(entries: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Each dataset is validated by the schema of its ``kind``."""
    valid = {}
    for name, entry in entries.items():
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in DATASET_SCHEMAS:
            problems.append(f"params.yaml: datasets.{name}.kind = {kind!r}: unknown dataset kind; "
                            f"allowed: {', '.join(DATASET_SCHEMAS)}")
            continue
        valid.update(_validate_section("datasets", {name: entry}, DATASET_SCHEMAS[kind], problems))
    return valid


def _validate_section(section: str, entries: dict[str, Any], schema: type[Strict],
                      problems: list[str]) -> dict[str, Any]:
    """Validate each named entry of a section, appending problems instead of stopping at the first."""
    valid = {}
    for name, entry in entries.items():
        try:
            valid[name] = schema.model_validate(entry)
        except ValidationError as err:
            problems += _format_errors(err, schema, (section, name))
    return valid


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: params file not found"])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}".replace("\n", " ")]) from None
    return parse_params(raw)


def variant_from_dict(data: dict[str, Any]) -> TrainingConfig:
    """Rebuild a variant config from ``model_dump()`` output (how workers and checkpoints carry it)."""
    return VARIANT_SCHEMAS[data["family"]].model_validate(data)


def config_hash(cfg: BaseModel) -> str:
    """Stable short hash of a resolved config: equal configs, equal hashes (resume and lineage tags)."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
