"""The evaluator on disk and the features it extracts.

``evaluators/<dataset>/`` holds ``evaluator.pt`` (state_dict + architecture, weights_only-safe),
``reference.npz`` (features of the real train and test splits, and the train features' mean and
covariance, the FID reference) and ``meta.json`` (dataset sha256,
test accuracy, feature dimension): the reference statistics are keyed by dataset hash and extractor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.data.npz import load_npz
from pipeline.models.evaluator import EvaluatorCNN


@dataclass(frozen=True)
class Evaluator:
    model: EvaluatorCNN
    train_features: np.ndarray  # [N_train, d] real reference (KID)
    train_mu: np.ndarray        # [d] mean of train_features (FID reference)
    train_cov: np.ndarray       # [d, d] unbiased covariance of train_features
    test_features: np.ndarray   # [N_test, d] held-out real data (the floor)
    meta: dict

    def features(self, images: np.ndarray, batch: int = 500) -> np.ndarray:
        return extract_features(self.model, images, batch)


@torch.no_grad()
def extract_features(model: EvaluatorCNN, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Images [N, C, H, W] float in [-1, 1] -> features [N, d] float64."""
    model.eval()
    out = [model.features(torch.as_tensor(images[i:i + batch], dtype=torch.float32)).double().numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def load_classifier(directory: str | Path) -> EvaluatorCNN:
    """The evaluator's classifier alone (eval mode)."""
    directory = Path(directory)
    if not (directory / "evaluator.pt").is_file():
        raise FileNotFoundError(f"{directory}: no evaluator; run `dvc repro evaluator@<dataset>`")
    saved = torch.load(directory / "evaluator.pt", map_location="cpu", weights_only=True)
    model = EvaluatorCNN(**saved["arch"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


@torch.no_grad()
def classify_channels(model: EvaluatorCNN, images: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] -> the class of every channel on its own, [N, C] int64."""
    n, c = images.shape[:2]
    singles = images.reshape(n * c, 1, *images.shape[2:])  # [N*C, 1, H, W]
    out = [model(torch.as_tensor(singles[i:i + batch], dtype=torch.float32)).argmax(1).numpy()
           for i in range(0, len(singles), batch)]
    return np.concatenate(out).reshape(n, c)


def load_evaluator(directory: str | Path) -> Evaluator:
    directory = Path(directory)
    model = load_classifier(directory)
    ref = load_npz(directory / "reference.npz")
    meta = json.loads((directory / "meta.json").read_text())
    return Evaluator(model, ref["train_features"], ref["train_mu"], ref["train_cov"], ref["test_features"], meta)
