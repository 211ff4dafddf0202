"""Typed, validated params: the one place that reads ``params.yaml``.

Every key is declared in :mod:`pipeline.schemas` (pydantic, ``extra="forbid"``), so a typo is an
error, not a silent default. :func:`load_params` collects *all* problems and raises
:class:`ConfigError` with one line per problem naming the key path, the bad value and what is
allowed; stages turn that into exit code 2 before Ray starts or any output is touched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from pipeline.schemas import (  # noqa: F401  (re-exported: code imports the schemas from here)
    ConfigError, Strict, DatasetConfig, MixtureDatasetConfig, StackedDigitsConfig, TypedDigitsConfig,
    DigitsToTypedConfig, ImageFoldersConfig, FileSpec, MnistConfig, IdxConfig, Cifar10Config, ImageFolderConfig,
    DATASET_SCHEMAS, POINT_DATASETS, UNPAIRED_DATASETS,
    AnyDatasetConfig, EvaluatorConfig, EvalConfig, TrainingConfig, AugmentName, DcganConfig, GanConfig,
    VaeConfig, CycleganConfig, StyleganConfig, VARIANT_SCHEMAS,
    TuneSpec, StorageOptions,
)
from pipeline.profiles import ProfileError, is_overlay, resolve
from pipeline.search_space import Dimension, parse_dimension


@dataclass(frozen=True)
class Params:
    """All validated params. ``variants`` values are family-specific ``TrainingConfig`` subclasses."""

    datasets: dict[str, AnyDatasetConfig]
    evaluators: dict[str, EvaluatorConfig]
    variants: dict[str, TrainingConfig]
    tune: dict[str, TuneSpec] = dataclass_field(default_factory=dict)

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
    tune: dict[str, Any] = Field(default_factory=dict)


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
    if not isinstance(family, str) or family not in VARIANT_SCHEMAS:
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
        problems += batch_size_problems(where, cfg, dataset.train_size(), f"dataset {cfg.dataset!r}")
        if isinstance(dataset, MixtureDatasetConfig):
            if schema.images_only:
                problems.append(f"{where}.dataset = {cfg.dataset!r}: family {family!r} needs an image "
                                f"dataset, {cfg.dataset!r} is 2-D points")
        elif dataset.image_size < schema.min_image_size:
            size = dataset.image_size
            problems.append(f"params.yaml: datasets.{cfg.dataset}.image_size = {size}: family {family!r} "
                            f"(variant {name}) needs at least {schema.min_image_size}")
        else:
            problems += _domain_problems(where, cfg, dataset)
    if cfg.precision == "bf16" and not cfg.use_gpu:
        problems.append(f"{where}.precision = 'bf16': bf16 autocast needs use_gpu: true (on CPU it is slower "
                        "than fp32); allowed on CPU: fp32")
    if cfg.batch_size % cfg.num_workers or cfg.batch_size // cfg.num_workers < 2:
        problems.append(f"{where}.batch_size = {cfg.batch_size}: must be a multiple of num_workers "
                        f"({cfg.num_workers}) with at least 2 images per worker (BatchNorm)")
    elif isinstance(cfg, (DcganConfig, GanConfig)) and cfg.conditional and cfg.pack > 1:
        problems.append(f"{where}.pack = {cfg.pack}: packing is not supported with conditional: true; use pack: 1")
    elif isinstance(cfg, (DcganConfig, GanConfig)) and (cfg.batch_size // cfg.num_workers) % cfg.pack:
        problems.append(f"{where}.pack = {cfg.pack}: must divide the per-worker batch "
                        f"(batch_size / num_workers = {cfg.batch_size // cfg.num_workers})")
    return cfg, problems


def batch_size_problems(where: str, cfg: TrainingConfig, n_train: int | None, source: str) -> list[str]:
    """A global batch larger than the train split would give epochs of zero steps (every batch is
    whole): refused here when the params fix the split's size, else once ``prepare`` has counted it
    (``n_train`` None: not known yet)."""
    if n_train is None or cfg.batch_size <= n_train:
        return []
    return [f"{where}.batch_size = {cfg.batch_size}: larger than the {n_train} training examples of {source}; "
            f"allowed: 2 .. {n_train}"]


def _domain_problems(where: str, cfg: TrainingConfig, dataset: Strict) -> list[str]:
    """Translation families need two unpaired domains, the others one; then the family's own checks
    against the dataset (:meth:`pipeline.schemas.TrainingConfig.dataset_problems`)."""
    unpaired = isinstance(dataset, UNPAIRED_DATASETS)
    if cfg.translates and not unpaired:
        return [f"{where}.dataset = {cfg.dataset!r}: family {cfg.family!r} translates between two domains; "
                f"use a dataset of kind digits_to_typed or image_folders"]
    if not cfg.translates and unpaired:
        translating = " or ".join(name for name, schema in VARIANT_SCHEMAS.items() if schema.translates)
        return [f"{where}.dataset = {cfg.dataset!r}: a two-domain dataset is for family {translating}; "
                f"family {cfg.family!r} needs a single-domain dataset"]
    return cfg.dataset_problems(where, dataset)


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
                 if isinstance(raw, dict) and isinstance(raw.get("dataset"), str)
                 and raw["dataset"] in top.datasets and raw["dataset"] not in top.evaluators]
    variants = {}
    for name, raw_variant in top.variants.items():
        cfg, variant_problems = _validate_variant(name, raw_variant, datasets, set(top.datasets))
        problems += variant_problems
        variants[name] = cfg
    tune = _validate_tune(top.tune, top.variants, datasets, set(top.datasets), problems)
    if problems:
        raise ConfigError(problems)
    return Params(datasets=datasets, evaluators=evaluators, variants=variants, tune=tune)


# Keys a search may not change: what the trial is (family, data, seed) and how Ray places it.
UNTUNABLE = ("family", "dataset", "seed", "seeds", "epochs", "num_workers", "cpus_per_worker", "use_gpu",
             "precision", "max_failures", "eval")


def _validate_tune(entries: dict[str, Any], raw_variants: dict[str, Any], datasets: dict[str, Any],
                   declared: set[str], problems: list[str]) -> dict[str, TuneSpec]:
    """Each ``tune.<variant>``: a valid spec of an existing variant, every dimension parsable and every
    value it can produce valid for that variant, and a budget the scheduler can work with."""
    valid = {}
    for name, spec in _validate_section("tune", entries, TuneSpec, problems).items():
        where = f"params.yaml: tune.{name}"
        raw = raw_variants.get(name)
        if not isinstance(raw, dict) or not isinstance(raw.get("family"), str) or raw["family"] not in VARIANT_SCHEMAS:
            problems.append(f"{where}: no valid variant of that name to tune; allowed: {', '.join(raw_variants)}")
            continue
        refusal = VARIANT_SCHEMAS[raw["family"]].tuning_refusal
        if refusal:
            problems.append(f"{where}: tuning a {raw['family']} variant is not supported yet ({refusal}); "
                            "tune another family")
            continue
        if _validate_variant(name, raw, datasets, declared)[1]:
            continue  # the variant's own problems are listed already; its trials would repeat them
        before = len(problems)
        problems += _budget_problems(where, spec)
        for key, text in spec.space.items():
            problems += _dimension_problems(f"{where}.space.{key}", name, key, text, raw, spec, datasets, declared)
        if len(problems) == before:
            valid[name] = spec
    return valid


def _budget_problems(where: str, spec: TuneSpec) -> list[str]:
    problems = []
    if spec.scheduler == "asha" and spec.grace_epochs > spec.max_epochs:
        problems.append(f"{where}.grace_epochs = {spec.grace_epochs}: at most max_epochs ({spec.max_epochs})")
    if spec.scheduler == "pbt":
        if spec.perturbation_epochs >= spec.max_epochs:
            problems.append(f"{where}.perturbation_epochs = {spec.perturbation_epochs}: must be below max_epochs "
                            f"({spec.max_epochs}), else PBT never exploits")
        if spec.num_samples < 2:
            problems.append(f"{where}.num_samples = {spec.num_samples}: PBT needs a population of at least 2")
        if spec.num_workers != 1:
            problems.append(f"{where}.num_workers = {spec.num_workers}: PBT trials run in one process; use 1")
    return problems


def _dimension_problems(where: str, variant: str, key: str, text: Any, raw: dict[str, Any], spec: TuneSpec,
                        datasets: dict[str, Any], declared: set[str]) -> list[str]:
    """A dimension names a tunable key of the variant, parses, and only produces valid values."""
    schema = VARIANT_SCHEMAS[raw["family"]]
    tunable = sorted(k for k in schema.model_fields if k not in UNTUNABLE)
    if key not in tunable:
        return [f"{where}: not a tunable key of variant {variant} (family {raw['family']}); "
                f"allowed: {', '.join(tunable)}"]
    try:
        dimension: Dimension = parse_dimension(text)
    except ValueError as err:
        return [f"{where} = {text!r}: {err}"]
    for value in dimension.candidates():
        trial = {**raw, key: value, "epochs": spec.max_epochs}
        _, trial_problems = _validate_variant(variant, trial, datasets, declared)
        if trial_problems:
            reason = trial_problems[0].split(": ", 1)[-1]
            return [f"{where} = {text!r}: can produce {key} = {value!r}, which variant {variant} refuses: {reason}"]
    return []


def _validate_datasets(entries: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Each dataset is validated by the schema of its ``kind``."""
    valid = {}
    for name, entry in entries.items():
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or kind not in DATASET_SCHEMAS:
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
    """Read and validate ``params.yaml`` (or a profile overlay on it, resolved first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: params file not found"])
    try:
        raw = yaml.safe_load(path.read_text())
        if is_overlay(raw):  # a profile: the base params with its changes (pipeline/profiles.py)
            raw = resolve(raw, path)
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}".replace("\n", " ")]) from None
    except ProfileError as err:
        raise ConfigError([str(err)]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: not UTF-8 text ({err.reason} at byte {err.start})"]) from None
    except ValueError as err:  # a scalar PyYAML cannot convert: `!!float 'x'`, an int of over 4,300 digits
        raise ConfigError([f"{path}: unreadable value: {err}"]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError([f"{path}: collections nested too deeply to read"]) from None
    return parse_params(raw)


def variant_from_dict(data: dict[str, Any]) -> TrainingConfig:
    """Rebuild a variant config from ``model_dump()`` output (how workers and checkpoints carry it)."""
    return VARIANT_SCHEMAS[data["family"]].model_validate(data)


def config_hash(cfg: BaseModel) -> str:
    """Stable short hash of a resolved config: equal configs, equal hashes (resume and lineage tags)."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
