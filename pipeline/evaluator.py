"""Train the per-dataset evaluator classifier and store it with the real reference features.

A plain PyTorch loop in the driver process: the classifier trains in seconds, so the ~20 s start-up
of a Ray Train run would cost more than the training itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.artifacts import atomic_path, write_json
from pipeline.augment import translation
from pipeline.config import EvaluatorConfig
from dataclasses import replace

from pipeline.data import DataSpec, Prepared, to_unit_range
from pipeline.data.shards import local_stream
from pipeline.data.stacked import unstack
from pipeline.data.npz import save_npz
from pipeline.metrics import feature_stats
from pipeline.metrics.features import extract_features
from pipeline.models.evaluator import EvaluatorCNN

log = logging.getLogger(__name__)


def train_classifier(cfg: EvaluatorConfig, data: Prepared) -> tuple[EvaluatorCNN, float]:
    """Train on the train split (with small random shifts); returns (model, test accuracy)."""
    torch.manual_seed(cfg.seed)
    epoch_batches = _streamed_batches(cfg, data) if data.streamed else _memory_batches(cfg, data)
    model = EvaluatorCNN(data.spec.channels, data.spec.num_classes, cfg.feature_dim, data.spec.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in tqdm(range(cfg.epochs), desc="evaluator", unit="epoch", disable=None):
        model.train()
        for x, y in epoch_batches(epoch):
            loss = F.cross_entropy(model(translation(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval(), accuracy(model, data.x_test, data.y_test)


def _memory_batches(cfg: EvaluatorConfig, data: Prepared) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Shuffled batches of the in-memory train split, the last one short."""
    x = torch.from_numpy(to_unit_range(data.x_train))
    y = torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(cfg.seed)

    def epoch_batches(_: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            yield x[idx], y[idx]

    return epoch_batches


def _streamed_batches(cfg: EvaluatorConfig, data: Prepared) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Batches of a streamed train split, read with pyarrow in a new shuffled order each epoch
    (no Ray in the driver); one shard and a shuffle window in memory at a time."""
    shape = (data.spec.channels, data.spec.image_size, data.spec.image_size)

    def epoch_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in local_stream(data.train_shards, cfg.batch_size, seed=cfg.seed * 100_003 + epoch):
            yield torch.from_numpy(to_unit_range(batch["image"].reshape(-1, *shape))), torch.from_numpy(batch["label"])

    return epoch_batches


def accuracy(model: EvaluatorCNN, images_uint8: np.ndarray, labels: np.ndarray) -> float:
    return label_accuracy(model, to_unit_range(images_uint8), labels)


@torch.no_grad()
def predict_labels(model: EvaluatorCNN, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The class ``model`` gives each of ``images`` [N, C, H, W] in [-1, 1]: [N] int64."""
    model.eval()
    return np.concatenate([model(torch.as_tensor(images[i:i + batch], dtype=torch.float32)).argmax(1).numpy()
                           for i in range(0, len(images), batch)])


def label_accuracy(model: EvaluatorCNN, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    """Share of ``images`` [N, C, H, W] in [-1, 1] that ``model`` assigns their ``labels`` [N]."""
    return float((predict_labels(model, images, batch) == labels).mean())


def build_evaluator(cfg: EvaluatorConfig, data: Prepared, out_dir: str | Path) -> dict:
    """Write ``out_dir`` atomically; returns its meta dict.

    Images: train the classifier and store the real reference features. 2-D mixtures: nothing to
    train; the evaluator is the known modes (means and std) the mode metrics assign samples to.
    """
    if "classes_per_channel" in data.meta:
        return _build_channel_classifier(cfg, data, out_dir)
    if data.spec.point_dim:
        meta = {"kind": "modes", "dataset_sha256": data.sha256, "modes": data.meta["modes"],
                "mode_std": data.meta["mode_std"], "n_test": int(len(data.x_test)), "test_accuracy": None}
        _write_atomically(out_dir, lambda tmp: None, meta)
        return meta
    if data.unpaired:
        return _build_domain_classifiers(cfg, data, out_dir)
    model, test_accuracy = train_classifier(cfg, data)
    log.info("evaluator test accuracy %.4f", test_accuracy)
    meta = {"kind": "classifier", "dataset_sha256": data.sha256, "extractor": f"EvaluatorCNN({model.arch})",
            "test_accuracy": test_accuracy, "n_train": data.n_train, "n_test": int(len(data.x_test))}
    x_train = data.x_train if not data.streamed else None  # None: features computed shard by shard
    _write_atomically(out_dir, lambda tmp: _write_classifier(tmp, model, x_train, data.x_test, data), meta)
    return meta


def _write_classifier(directory: Path, model: EvaluatorCNN, x_train: np.ndarray | None, x_test: np.ndarray,
                      data: Prepared | None = None) -> None:
    """``evaluator.pt`` and ``reference.npz`` (features of the real train and test images, train
    mean and covariance) into ``directory``. ``x_train`` None: a streamed split, read from ``data``'s
    shards in chunks of whole feature batches (500 rows), so the features equal the in-memory ones."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"arch": model.arch, "state_dict": model.state_dict()}, directory / "evaluator.pt")
    if x_train is None:
        train_features = np.concatenate([extract_features(model, to_unit_range(x))
                                         for x, _ in data.iter_train(batch_rows=4000)])
    else:
        train_features = extract_features(model, to_unit_range(x_train))
    train_mu, train_cov = feature_stats(train_features)
    save_npz(directory / "reference.npz", train_features=train_features, train_mu=train_mu, train_cov=train_cov,
             test_features=extract_features(model, to_unit_range(x_test)))


def _build_domain_classifiers(cfg: EvaluatorConfig, data: Prepared, out_dir: str | Path) -> dict:
    """Two domains: ``A/`` and ``B/``, each a classifier evaluator in its own right (translations to
    a domain are measured in its features). Labelled domains (digits_to_typed) get one class
    classifier per domain, trained on that domain's real train split; unlabelled ones (the user's
    folders) share one A-vs-B domain classifier, whose features still tell the domains apart."""
    domains = {"A": (data.x_train, data.y_train, data.x_test, data.y_test),
               "B": (data.x_train_b, data.y_train_b, data.x_test_b, data.y_test_b)}
    labelled = data.spec.num_classes > 0
    if not labelled:
        x_tr, x_te = np.concatenate([data.x_train, data.x_train_b]), np.concatenate([data.x_test, data.x_test_b])
        y_tr = np.repeat([0, 1], [len(data.x_train), len(data.x_train_b)])
        y_te = np.repeat([0, 1], [len(data.x_test), len(data.x_test_b)])
        shared = train_classifier(cfg, replace(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                                                 spec=replace(data.spec, num_classes=2)))
    models, metas = {}, {}
    for name, (x_tr, y_tr, x_te, y_te) in domains.items():
        one = replace(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        models[name], accuracy = train_classifier(cfg, one) if labelled else shared
        metas[name] = {"kind": "classifier", "dataset_sha256": data.sha256, "domain": name,
                       "classifies": "class" if labelled else "domain",
                       "extractor": f"EvaluatorCNN({models[name].arch})", "test_accuracy": accuracy,
                       "n_train": int(len(x_tr)), "n_test": int(len(x_te))}
        log.info("domain %s evaluator (%s) test accuracy %.4f", name, metas[name]["classifies"], accuracy)

    def write(tmp: Path) -> None:
        for name, (x_tr, _, x_te, _) in domains.items():
            _write_classifier(tmp / name, models[name], x_tr, x_te)
            write_json(tmp / name / "meta.json", metas[name])

    meta = {"kind": "translation", "dataset_sha256": data.sha256, "labelled": labelled,
            "test_accuracy": {name: m["test_accuracy"] for name, m in metas.items()}}
    _write_atomically(out_dir, write, meta)
    return meta


def _build_channel_classifier(cfg: EvaluatorConfig, data: Prepared, out_dir: str | Path) -> dict:
    """Stacked digits: a one-channel digit classifier, trained on the distinct digits in the train
    stacks and tested on those in the test stacks; it labels each channel of a sample."""
    x_train, y_train = _unstack_train(data)
    x_test, y_test = unstack(data.x_test, data.y_test)
    classes = data.meta["classes_per_channel"]
    singles = replace(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, train_shards=None,
                      spec=DataSpec(1, data.spec.image_size, classes))
    model, test_accuracy = train_classifier(cfg, singles)
    log.info("per-channel evaluator test accuracy %.4f on %d distinct test digits", test_accuracy, len(x_test))
    meta = {"kind": "channel_classifier", "dataset_sha256": data.sha256, "extractor": f"EvaluatorCNN({model.arch})",
            "test_accuracy": test_accuracy, "n_train": int(len(x_train)), "n_test": int(len(x_test))}
    _write_atomically(out_dir, lambda tmp: torch.save({"arch": model.arch, "state_dict": model.state_dict()},
                                                      tmp / "evaluator.pt"), meta)
    return meta


def _unstack_train(data: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The distinct single digits of the stacked train split (``unstack``), chunk by chunk when it
    is streamed: the distinct digits of each chunk, then of them all (first occurrences, in order)."""
    if not data.streamed:
        return unstack(data.x_train, data.y_train)
    parts = [unstack(x, y) for x, y in data.iter_train()]
    singles, classes = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    _, first = np.unique(singles.reshape(len(singles), -1), axis=0, return_index=True)
    first = np.sort(first)
    return singles[first], classes[first]


def _write_atomically(out_dir: str | Path, write: Callable[[Path], None], meta: dict) -> None:
    """``write(tmp_dir)`` plus ``meta.json`` into a temporary sibling, swapped in as ``out_dir``
    (:func:`pipeline.artifacts.atomic_path`: a failed write leaves the old evaluator in place)."""
    with atomic_path(out_dir, directory=True) as tmp:
        write(tmp)
        write_json(tmp / "meta.json", meta)
